//! One-op ONNX models against onnxruntime (`golden/onnx_ops.json`, from
//! `scripts/onnx-op-goldens.py`): Conv (dense, depthwise, dilated),
//! MaxPool and AveragePool over random shapes, padded every way ONNX can
//! say it (explicit pads of any amounts per side, SAME_UPPER, SAME_LOWER,
//! VALID, count_include_pad), and the activations on their own (Relu,
//! LeakyRelu, Sigmoid, Tanh, HardSwish), BatchNormalization folded into a
//! Conv, depthwise Conv or Gemm before it or on its own, and Gemm with
//! alpha, beta, transB and a broadcast bias, and Add, Sub, Mul, Div of a
//! broadcast constant (either side) or of two activations, and the heads
//! PyTorch writes after a Conv (GlobalAveragePool + Squeeze, ReduceMean,
//! Reshape to a Constant node's shape, then Gemm), and Concat along each
//! NCHW axis and of two Gemms; then Conv1d over `[1, C, L]` (a keyword
//! spotter too), MatMul at every step of a `[1, T, F]` sequence and its
//! Transpose into a Conv1d, HardSigmoid, Elu, Softmax and LogSoftmax over
//! channels, ReduceMean over other axes, 4-D Transpose, Mul and Sub of
//! activations that broadcast, Unsqueeze/Conv/Squeeze, Pad of values
//! (4-D and rank 3), Slice (with a step, backwards, of a flat tensor), an
//! uneven Split and grouped Conv; then Conv padded wider than its kernel
//! and on one side only, MaxPool and AveragePool with ceil_mode and with
//! explicit pads left out of the average; Reshapes whose shape a chain of
//! Shape, Gather, Unsqueeze, Mul and Concat computes, Reshapes that move
//! values (a Gemm's features to a Conv's [1, C, H, W], between spatial
//! shapes, to a MatMul's sequence), ShuffleNet's channel shuffle, and
//! ConvTranspose at stride 1 and with stride equal to the kernel, and a
//! Relu of a Concat of two Convs (fused into each). Float, so within
//! 1e-5 relative: onnxruntime sums a convolution in its own order.

mod common;

use harness::model::graph::LayerOp;
use harness::model::host::HostModel;
use harness::model::lower;
use serde_json::Value;
use std::path::Path;

fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

fn dims(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect()
}

/// The float model quantized by bench (calibrated on `x`, NHWC) runs in
/// int8 within two output steps of onnxruntime's float output `want`
/// (NCHW): its constant operand is quantized with its own range, a
/// concatenation's parts with the output's parameters.
fn int8_within_two_steps(
    name: &str,
    graph: &harness::model::graph::Graph,
    x: &[f32],
    want: &[f32],
) {
    let ranges = lower::calibrate(graph, &[x.to_vec()]).unwrap();
    let low = lower::lower_int8(graph, &ranges, lower::Int8Options::default())
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let ((s_in, zp_in), (s_out, zp_out)) = (low.quant[graph.input], low.quant[graph.output]);
    let q: Vec<u8> = x
        .iter()
        .map(|&v| ((v / s_in).round() as i32 + zp_in).clamp(-128, 127) as i8 as u8)
        .collect();
    let mut host = HostModel::new(low.blob.as_bytes()).unwrap();
    let outcome = host.run(&q, &[]).unwrap();
    let got: Vec<f32> = host
        .tensor(&outcome.output)
        .iter()
        .map(|&b| s_out * (b as i8 as i32 - zp_out) as f32)
        .collect();
    let got = graph
        .layout
        .to_model(graph.tensors[graph.output].shape, &got, 1);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 2.0 * s_out,
            "{name} in int8: element {i} is {g}, onnxruntime's {w} (output step {s_out})"
        );
    }
}

#[test]
fn one_op_onnx_models_match_onnxruntime() {
    let path = harness::workspace_root().join("harness/tests/golden/onnx_ops.json");
    let golden: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let cases = golden["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 111);
    let mut explicit = 0;
    let mut pad_layers = 0;
    let mut quantized = 0;
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let model = common::unhex(&case["model"]);
        let graph = harness::model::onnx::import(&model, "case", Path::new(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        explicit += graph
            .layers
            .iter()
            .filter(|l| explicitly_padded(&l.op))
            .count();
        pad_layers += graph
            .layers
            .iter()
            .filter(|l| l.name.ends_with("/pad"))
            .count();
        // A batch norm after a layer is folded into it; alone it is a
        // (depthwise 1x1) layer: one layer either way.
        if name.starts_with("BatchNormalization") {
            assert_eq!(graph.layers.len(), 1, "{name}: layers");
        }
        // A Relu after a Concat of convolutions clamps in each of them.
        if name.starts_with("Concat-convs-relu") {
            let activations = graph
                .layers
                .iter()
                .filter(|l| matches!(l.op, LayerOp::Activation { .. }))
                .count();
            assert_eq!(activations, 0, "{name}: a Relu layer of its own");
        }
        let low = lower::lower_f32(&graph).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut host = HostModel::new(low.blob.as_bytes()).unwrap();
        // Values cross the boundary in the model's layout, as `bench infer` gives them.
        let (input, output) = (
            graph.tensors[graph.input].shape,
            graph.tensors[graph.output].shape,
        );
        let x = graph
            .layout
            .to_bench(input, &floats(&common::unhex(&case["input"])), 1);
        let outcome = host.run(bytemuck::cast_slice(&x), &[]).unwrap();
        let got = graph
            .layout
            .to_model(output, &floats(host.tensor(&outcome.output)), 1);
        let want = floats(&common::unhex(&case["output"]));
        assert_eq!(got.len(), want.len(), "{name}: output size");
        let onnx_dims: Vec<u32> = dims(&case["output_shape"])
            .iter()
            .map(|&d| d as u32)
            .collect();
        let item: Vec<u32> = graph
            .layout
            .item_dims(output)
            .iter()
            .map(|&d| d as u32)
            .collect();
        let squeeze = |d: &[u32]| d.iter().copied().filter(|&d| d != 1).collect::<Vec<_>>();
        assert_eq!(squeeze(&item), squeeze(&onnx_dims), "{name}: output shape");
        let concat_of_input = name.starts_with("Concat") && !name.contains("flat");
        if name.contains("-constant") || concat_of_input {
            int8_within_two_steps(name, &graph, &x, &want);
            quantized += 1;
        }
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-5 * w.abs().max(1.0),
                "{name} ({}): element {i} is {g}, onnxruntime's {w}",
                case["attributes"]
            );
        }
    }
    assert_eq!(quantized, 12, "arithmetic with a constant, concat");
    // Explicit pads are the kernels' own; only averages that count their
    // padded taps pad in a layer of their own first.
    assert_eq!(
        (explicit, pad_layers),
        (29, 8),
        "windows padded explicitly, pad layers"
    );
}

fn explicitly_padded(op: &LayerOp) -> bool {
    use kernels::geometry::Padding;
    matches!(
        op,
        LayerOp::Conv2d {
            padding: Padding::Explicit { .. },
            ..
        } | LayerOp::DepthwiseConv2d {
            padding: Padding::Explicit { .. },
            ..
        } | LayerOp::MaxPool {
            padding: Padding::Explicit { .. },
            ..
        } | LayerOp::AvgPool {
            padding: Padding::Explicit { .. },
            ..
        }
    )
}
