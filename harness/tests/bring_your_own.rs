//! Models users bring (models/byo, made by scripts/byo-pytorch.py): PyTorch
//! exports to ONNX, float and quantized by onnxruntime in QDQ and
//! QOperator formats, against onnxruntime's own outputs on 8 seeded inputs
//! (harness/tests/golden/byo), given and compared in the model's NCHW
//! layout as `bench infer` gives them.
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

use harness::model::graph::{Graph, LayerOp};
use harness::model::host::HostModel;
use harness::pipeline::infer;
use std::path::PathBuf;

/// `(model, largest difference in output steps)`; `None`: a float model.
const FIXTURES: [(&str, Option<f32>); 7] = [
    ("pytorch_cnn", None),
    ("pytorch_kws1d", None),
    ("pytorch_cnn_qdq", Some(1.0)),
    ("pytorch_cnn_qdq_uint8_per_tensor", Some(1.0)),
    ("pytorch_cnn_qoperator", Some(1.0)),
    ("pytorch_cnn_qoperator_uint8", Some(1.0)),
    ("pytorch_kws1d_qdq", Some(1.0)),
];

fn root() -> PathBuf {
    harness::workspace_root()
}

fn floats(path: &std::path::Path) -> (Vec<u64>, Vec<f32>) {
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

#[test]
fn pytorch_exports_match_onnxruntime_float_and_quantized() {
    for (name, steps) in FIXTURES {
        let model = root().join("models/byo").join(format!("{name}.onnx"));
        let graph = harness::model::onnx::load(&model).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            harness::model::prepare::is_imported_int8(&graph),
            steps.is_some(),
            "{name}"
        );
        let prepared = infer::as_is(&graph).unwrap_or_else(|e| panic!("{name}: {e}"));
        let golden = root().join("harness/tests/golden/byo").join(name);
        let (shape, x) = floats(&golden.join("inputs.npy"));
        let (_, want) = floats(&golden.join("outputs.npy"));
        let count = shape[0] as usize;
        let (input, output) = (
            graph.tensors[graph.input].shape,
            graph.tensors[graph.output].shape,
        );
        let mut host = HostModel::new(prepared.lowered.blob.as_bytes()).unwrap();
        let per_input = x.len() / count;
        let per_output = want.len() / count;
        let (mut worst, mut equal) = (0.0f32, 0);
        for k in 0..count {
            let item = graph
                .layout
                .to_bench(input, &x[k * per_input..(k + 1) * per_input], 1);
            let outcome = host.run(bytemuck::cast_slice(&item), &[]).unwrap();
            let got: Vec<f32> = bytemuck::cast_slice(host.tensor(&outcome.output)).to_vec();
            let got = graph.layout.to_model(output, &got, 1);
            for (g, w) in got.iter().zip(&want[k * per_output..(k + 1) * per_output]) {
                let off = match steps {
                    None => (g - w).abs() / w.abs().max(1.0),
                    Some(_) => (g - w).abs() / output_step(&graph),
                };
                worst = worst.max(off);
                equal += usize::from(g == w);
            }
        }
        match steps {
            None => assert!(worst <= 1e-5, "{name}: {worst} relative"),
            // Half a step of float slack: both sides dequantize the same integers.
            Some(bound) => assert!(
                worst <= bound + 0.01,
                "{name}: {worst} output steps (bound {bound})"
            ),
        }
        let unit = if steps.is_some() {
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
