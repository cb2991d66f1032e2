//! Models users bring (models/byo, made by scripts/byo-pytorch.py and
//! scripts/byo-keras-larq.py): PyTorch exports to ONNX, float and
//! quantized by onnxruntime in QDQ and QOperator formats (and a network of
//! channel shuffle, ceil-mode pooling, ConvTranspose upsampling and F.pad
//! through both of PyTorch's exporters: the TorchScript one writes its
//! shapes as Shape/Gather/Concat arithmetic), a Keras MLP
//! through tf2onnx, and six Larq networks converted by the Larq Compute
//! Engine (two of them int8), against their own framework's outputs on 8 seeded inputs
//! (onnxruntime's; LCE's interpreter's; harness/tests/golden/byo), given
//! and compared in the model's own layout as `bench infer` gives them.
//!
//! Float models agree within 1e-5 relative (onnxruntime sums in its own
//! order). Quantized models run in integer arithmetic; they are compared in
//! units of the output's scale, and differ by at most one step, for two
//! reasons: onnxruntime requantizes an accumulator with a float multiply
//! rounded half to even, bench (as TFLite and CMSIS-NN) with a fixed-point
//! multiplier and its rounding, so a layer's output can differ by one step
//! where the product lands within a float ulp of a tie; and onnxruntime
//! computes a quantized Softmax in float between its DequantizeLinear and
//! QuantizeLinear, bench with TFLite's fixed-point int8 softmax (the one
//! the devices run). The bound per model below is what it measures, and
//! the test fails if it grows.
//!
//! The Larq networks run on bench's binary kernels. Packed signs between
//! binary layers (LCE's thresholds) are exact, and so is every sign the
//! next binary layer takes (one flipped sign would move an output by twice
//! a multiplier); a float output of a binary convolution is `dot *
//! multiplier + bias` in bench, `(bias + K multiplier) - 2 popcount
//! multiplier` in LCE, whose rounding is that of `K |multiplier|` (K = 360
//! taps in the chain) rather than of the result: 3e-5 relative there.

use harness::model::graph::{Graph, LayerOp, Precision};
use harness::model::host::HostModel;
use harness::pipeline::infer;
use std::path::{Path, PathBuf};

/// How close a model's outputs must be to its framework's.
#[derive(Clone, Copy)]
enum Bound {
    /// Float: relative to `max(|reference|, 1)`.
    Relative(f32),
    /// Quantized: in units of the output's scale.
    Steps(f32),
}

/// `(model file, bound, binary layers it has)`.
const FIXTURES: [(&str, Bound, usize); 14] = [
    ("pytorch_cnn.onnx", Bound::Relative(1e-5), 0),
    ("pytorch_kws1d.onnx", Bound::Relative(1e-5), 0),
    ("pytorch_shuffle_upsample.onnx", Bound::Relative(1e-5), 0),
    (
        "pytorch_shuffle_upsample_torchscript.onnx",
        Bound::Relative(1e-5),
        0,
    ),
    ("pytorch_cnn_qdq.onnx", Bound::Steps(1.0), 0),
    (
        "pytorch_cnn_qdq_uint8_per_tensor.onnx",
        Bound::Steps(1.0),
        0,
    ),
    ("pytorch_cnn_qoperator.onnx", Bound::Steps(1.0), 0),
    ("pytorch_cnn_qoperator_uint8.onnx", Bound::Steps(1.0), 0),
    ("pytorch_kws1d_qdq.onnx", Bound::Steps(1.0), 0),
    ("keras_mlp.onnx", Bound::Relative(1e-5), 0),
    ("larq_binarynet.tflite", Bound::Relative(1e-5), 4),
    ("larq_dscnn_kws.tflite", Bound::Relative(1e-5), 2),
    ("larq_bconv_chain.tflite", Bound::Relative(3e-5), 2),
    ("larq_zero_padding.tflite", Bound::Relative(3e-5), 2),
];

fn root() -> PathBuf {
    harness::workspace_root()
}

fn floats(path: &Path) -> (Vec<u64>, Vec<f32>) {
    let npy = npyz::NpyFile::new(std::fs::File::open(path).unwrap()).unwrap();
    (npy.shape().to_vec(), npy.into_vec::<f32>().unwrap())
}

/// The scale of the int8 tensor a quantized model's float output is dequantized from.
fn output_step(graph: &Graph) -> f32 {
    let last = graph.layers.last().unwrap();
    assert_eq!(
        last.op,
        LayerOp::Dequantize,
        "{}: ends in a Dequantize",
        graph.name
    );
    graph.tensors[last.inputs[0]].quant.unwrap().0
}

/// The host outputs of `graph` for every golden input, in the model's layout.
fn run(graph: &Graph, inputs: &[f32], count: usize) -> Vec<Vec<f32>> {
    let prepared = infer::as_is(graph).unwrap_or_else(|e| panic!("{}: {e}", graph.name));
    let mut host = HostModel::new(prepared.lowered.blob.as_bytes()).unwrap();
    let (input, output) = (
        graph.tensors[graph.input].shape,
        graph.tensors[graph.output].shape,
    );
    inputs
        .chunks_exact(inputs.len() / count)
        .map(|x| {
            let item = graph.layout.to_bench(input, x, 1);
            let outcome = host.run(bytemuck::cast_slice(&item), &[]).unwrap();
            let got: Vec<f32> = bytemuck::cast_slice(host.tensor(&outcome.output)).to_vec();
            graph.layout.to_model(output, &got, 1)
        })
        .collect()
}

#[test]
fn exported_models_match_their_frameworks() {
    for (file, bound, binary) in FIXTURES {
        let model = root().join("models/byo").join(file);
        let name = file.split('.').next().unwrap();
        let graph = harness::model::import::load(&model).unwrap_or_else(|e| panic!("{e}"));
        let quantized = matches!(bound, Bound::Steps(_));
        assert_eq!(
            harness::model::prepare::is_imported_int8(&graph),
            quantized,
            "{name}"
        );
        let binary_layers = graph
            .layers
            .iter()
            .filter(|l| l.precision == Precision::Binary)
            .count();
        assert_eq!(binary_layers, binary, "{name}: binary layers");
        let golden = root().join("harness/tests/golden/byo").join(name);
        let (shape, x) = floats(&golden.join("inputs.npy"));
        let (_, want) = floats(&golden.join("outputs.npy"));
        let got = run(&graph, &x, shape[0] as usize);
        let (mut worst, mut equal) = (0.0f32, 0);
        for (g, w) in got.concat().iter().zip(&want) {
            let off = match bound {
                Bound::Relative(_) => (g - w).abs() / w.abs().max(1.0),
                Bound::Steps(_) => (g - w).abs() / output_step(&graph),
            };
            worst = worst.max(off);
            equal += usize::from(g == w);
        }
        assert_eq!(got.concat().len(), want.len(), "{name}: outputs");
        match bound {
            Bound::Relative(r) => assert!(worst <= r, "{name}: {worst} relative (bound {r})"),
            // A hundredth of a step of float slack: both sides dequantize the same integers.
            Bound::Steps(b) => assert!(
                worst <= b + 0.01,
                "{name}: {worst} output steps (bound {b})"
            ),
        }
        let unit = if quantized {
            "output steps"
        } else {
            "relative"
        };
        println!(
            "{name}: largest difference {worst} {unit}; {equal} of {} outputs equal",
            want.len()
        );
    }
}

/// LCE writes a binary convolution's output as packed bits when a binary
/// convolution reads it: bench's lowering does the same (a threshold per
/// channel, no float tensor in between), with the same outputs as the
/// float margin and a Sign, and 16,000 activation bytes fewer (10x10x40
/// floats), which is what lets the chain run on the 16 KiB cores.
#[test]
fn a_binary_convolution_before_another_writes_packed_bits() {
    use harness::model::lower::{self, Placement};
    let model = root().join("models/byo/larq_bconv_chain.tflite");
    let graph = harness::model::import::load(&model).unwrap();
    let fused = lower::lower_f32(&graph).unwrap();
    let unfused = lower::lower_f32_placed(&graph, Placement::Planned).unwrap();
    assert_eq!(
        unfused.activation_bytes - fused.activation_bytes,
        10 * 10 * 40 * 4
    );
    let (_, x) = floats(&root().join("harness/tests/golden/byo/larq_bconv_chain/inputs.npy"));
    let lowered = [fused, unfused];
    let mut hosts = [0, 1].map(|i| HostModel::new(lowered[i].blob.as_bytes()).unwrap());
    for item in x.chunks_exact(10 * 10 * 8) {
        let [a, b] = hosts.each_mut().map(|h| {
            let outcome = h.run(bytemuck::cast_slice(item), &[]).unwrap();
            h.tensor(&outcome.output).to_vec()
        });
        assert_eq!(a, b);
    }
}

/// LCE's int8 models (int8 input and output) equal LCE's interpreter
/// exactly: `larq_int8` (int8 ranges learned per layer) has binary
/// convolutions that write int8 and one that writes packed bits, and a
/// binary dense layer LCE keeps in float between LceDequantize and
/// QUANTIZE; `larq_int8_default_range` (converted with
/// `experimental_default_int8_range`) keeps float binary convolutions and
/// MEAN between its int8 layers. Those float layers run in float inside
/// the int8 model. Binary max pools pool packed signs, so the binary
/// convolution before one writes bits and no float tensor is made: the
/// arena of `larq_int8` is 3,920 bytes (31,360 with the pooled floats),
/// small enough for the 16 KiB cores.
#[test]
fn lce_int8_models_equal_lces_interpreter() {
    // (model, binary layers, the arena's bytes)
    let cases = [
        ("larq_int8", 4, 3920),
        ("larq_int8_default_range", 4, 18000),
    ];
    for (name, binary, arena) in cases {
        let model = root().join("models/byo").join(format!("{name}.tflite"));
        let graph = harness::model::import::load(&model).unwrap_or_else(|e| panic!("{e}"));
        assert!(harness::model::prepare::is_imported_int8(&graph), "{name}");
        let binary_layers = graph
            .layers
            .iter()
            .filter(|l| l.precision == Precision::Binary)
            .count();
        assert_eq!(binary_layers, binary, "{name}: binary layers");
        let prepared = infer::as_is(&graph).unwrap_or_else(|e| panic!("{name}: {e}"));
        let lowered = &prepared.lowered;
        println!(
            "{name}: arena {} activation {}",
            lowered.arena_bytes, lowered.activation_bytes
        );
        assert_eq!(lowered.arena_bytes, arena, "{name}: arena bytes");
        let golden = root().join("harness/tests/golden/byo").join(name);
        let read = |file: &str| {
            let npy = npyz::NpyFile::new(std::fs::File::open(golden.join(file)).unwrap()).unwrap();
            (npy.shape().to_vec(), npy.into_vec::<i8>().unwrap())
        };
        let ((shape, x), (_, want)) = (read("inputs.npy"), read("outputs.npy"));
        let mut host = HostModel::new(lowered.blob.as_bytes()).unwrap();
        let got: Vec<i8> = x
            .chunks_exact(x.len() / shape[0] as usize)
            .flat_map(|item| {
                let outcome = host.run(bytemuck::cast_slice(item), &[]).unwrap();
                bytemuck::cast_slice::<u8, i8>(host.tensor(&outcome.output)).to_vec()
            })
            .collect();
        assert_eq!(got, want, "{name}");
    }
}

/// A Larq network's int8 twin (the same shapes, its binary layers made
/// int8 by per-layer overrides): the binary convolutions read the values
/// their signs were taken of, the Signs go, and it runs.
#[test]
fn a_larq_networks_binary_layers_can_be_made_int8() {
    use harness::model::prepare::{self, Calibration, Recipe, Scheme};
    let model = root().join("models/byo/larq_dscnn_kws.tflite");
    let graph = harness::model::import::load(&model).unwrap();
    let binary: Vec<String> = graph
        .layers
        .iter()
        .filter(|l| l.precision == Precision::Binary)
        .map(|l| l.name.clone())
        .collect();
    assert_eq!(binary, ["lcebconv2d_3", "lcebconv2d_6"]);
    let recipe = Recipe {
        scheme: Scheme::Int8 { per_channel: true },
        overrides: binary
            .iter()
            .map(|n| (n.clone(), Precision::Full))
            .collect(),
        pruning: None,
        exits: None,
        weight_seed: 1,
        calibration: Calibration::Synthetic(4, 1),
        input_seed: 1,
        memory: Default::default(),
    };
    let twin = prepare::prepare(&graph, &recipe).unwrap();
    assert!(twin
        .graph
        .layers
        .iter()
        .all(|l| l.op != LayerOp::Sign && l.precision != Precision::Binary));
    let (output, exit) = prepare::reference(&twin, &[]).unwrap();
    assert_eq!((output.len(), exit), (12, None));
}

/// PyTorch's two exporters write the same network differently (the
/// TorchScript one: shapes as Shape/Gather/Concat arithmetic, F.pad as a
/// Pad whose amounts a Slice/Transpose/Cast chain computes; the default:
/// constants, the pad inside the Conv's pads). Folded at import, both are
/// the same layers: no Pad, the padding the conv's own, and the channel
/// shuffle one transpose.
#[test]
fn both_pytorch_exporters_give_the_same_layers() {
    let load = |file: &str| {
        let model = root().join("models/byo").join(file);
        harness::model::import::load(&model).unwrap_or_else(|e| panic!("{e}"))
    };
    let ops =
        |graph: &Graph| -> Vec<LayerOp> { graph.layers.iter().map(|l| l.op.clone()).collect() };
    let default = load("pytorch_shuffle_upsample.onnx");
    let torchscript = load("pytorch_shuffle_upsample_torchscript.onnx");
    assert_eq!(ops(&default), ops(&torchscript));
    let kinds: Vec<&str> = default
        .layers
        .iter()
        .map(|l| match l.op {
            LayerOp::Conv2d { .. } => "conv",
            LayerOp::DepthwiseConv2d { .. } => "depthwise",
            LayerOp::Transpose { .. } => "transpose",
            LayerOp::Reshape | LayerOp::Flatten => "reshape",
            LayerOp::MaxPool { .. } => "maxpool",
            LayerOp::Dense { .. } => "dense",
            LayerOp::Slice { .. } => "slice",
            LayerOp::Insert { .. } => "insert",
            LayerOp::Activation { .. } => "activation",
            _ => "other",
        })
        .collect();
    let group = ["slice", "conv", "insert"];
    let want = [
        &["conv"][..],
        &["reshape", "transpose", "reshape"], // the channel shuffle
        &["depthwise"],
        &group, // the grouped pointwise conv, one conv per group
        &group,
        &group,
        &["maxpool"], // the ceil-mode pool (the groups' Relu is fused into each)
        &["conv", "reshape", "transpose", "reshape"], // ConvTranspose: 1x1 conv, depth to space
        &["activation", "conv", "reshape", "dense"], // Relu, F.pad folded into the conv, the head
    ]
    .concat();
    assert_eq!(kinds, want);
}
