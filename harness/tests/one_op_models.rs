//! One-operator .tflite models (PAD, PADV2, TRANSPOSE, MEAN over ranks 1
//! to 4, int8 and float32; FULLY_CONNECTED with int8 weights and float
//! activations; RELU, RELU6, RELU_N1_TO_1, RELU_0_TO_1 and LEAKY_RELU in
//! int8 and float32, LOGISTIC and TANH in int8, every int8 input value;
//! SQUEEZE and EXPAND_DIMS; ADD, SUB, MUL, MAXIMUM and MINIMUM with
//! broadcasting, in int8 and float32, the broadcast operand made from the
//! input by MEAN and RESHAPE, since models here have one input; SLICE and
//! STRIDED_SLICE with negative indices, strides of either sign and masks;
//! SPLIT, SPLIT_V, UNPACK, CONCATENATION and PACK; GATHER with constant
//! indices, RESIZE_NEAREST_NEIGHBOR; models of two inputs or two outputs;
//! float CONV_2D and FULLY_CONNECTED whose weights a DEQUANTIZE makes from
//! float16 or int8 constants; HARD_SWISH and SQUARED_DIFFERENCE in int8
//! and float32; the legacy uint8 scheme: CONV_2D, DEPTHWISE_CONV_2D and
//! FULLY_CONNECTED with weight zero points, both pools, SOFTMAX, ADD,
//! QUANTIZE between uint8 and int8, and a small MobileNet-shaped network;
//! grouped CONV_2D and RESIZE_BILINEAR in int8 and float32; a flatten
//! through SHAPE, STRIDED_SLICE and PACK into RESHAPE's shape input;
//! int8 LOG_SOFTMAX; ADD, SUB, MUL, MAXIMUM, MINIMUM and SQUARED_DIFFERENCE
//! with a constant second operand; TFLite's 16x8 scheme: CONV_2D,
//! DEPTHWISE_CONV_2D and FULLY_CONNECTED with int64 biases, both pools,
//! ADD, SUB and MUL of two int16 inputs, LOGISTIC and TANH (both input
//! scale paths), SOFTMAX, the operators that move bytes, QUANTIZE from
//! float32 and between int8
//! and int16, DEQUANTIZE; both pools with a fused RELU or RELU6 in int8,
//! int16, uint8 and float32; int8 SVDF with int16 time weights and state;
//! BATCH_MATMUL in int8 and float32 with broadcast batches, adj_x, adj_y
//! and a constant second operand; ADD, SUB, MUL, MAXIMUM, MINIMUM and
//! SQUARED_DIFFERENCE with a constant first operand; uint8 MEAN, SUB, MUL,
//! MAXIMUM, MINIMUM and the standalone activations; int16 PAD, PADV2 and
//! MEAN)
//! through the whole path: import, lowering, the
//! kernels on the host, portable and then again at each x86 SIMD level
//! this CPU has (the host device program's kernels).
//! kernels/tests/golden/make_op_goldens.py built each model and ran it
//! with LiteRT's BUILTIN_REF resolver; every output byte must match.

use harness::model::host::HostModel;
use harness::model::lower::{self, Int8Options};
mod common;

use common::unhex;
use harness::model::tflite;
use serde_json::Value;
use std::path::Path;

/// Every case with the portable kernels, and on x86-64 again with each
/// SIMD level this CPU has selected (the only test in this binary, so the
/// selection is not shared with another).
#[test]
fn one_op_models_match_litert_byte_for_byte() {
    check_every_case("portable");
    #[cfg(target_arch = "x86_64")]
    for isa in kernels::x86::Isa::ALL
        .into_iter()
        .filter(|&isa| isa != kernels::x86::Isa::Portable && isa.is_available())
    {
        assert_eq!(kernels::x86::select(isa), isa);
        check_every_case(isa.name());
    }
}

fn check_every_case(kernels: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/one_op_models.json");
    let golden: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cases = golden["cases"].as_array().unwrap();
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for (i, case) in cases.iter().enumerate() {
        let label = format!(
            "{kernels} kernels, case {i} ({} {})",
            case["op"], case["dtype"]
        );
        let graph = tflite::import(&unhex(&case["model"]), "one-op", Path::new("one-op.tflite"))
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        // A quantized model (a QUANTIZE from a float input too) lowers as imported.
        let low = if graph.tensors.iter().any(|t| t.quant.is_some()) {
            lower::lower_int8(&graph, &[], Int8Options::default())
        } else {
            lower::lower_f32(&graph)
        }
        .unwrap_or_else(|e| panic!("{label}: {e}"));
        let mut host = HostModel::new(low.blob.as_bytes()).unwrap();
        // Several model inputs are packed one after another, in the model's order.
        let packed: Vec<u8> = case["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(unhex)
            .collect();
        let outcome = host
            .run(&packed, &[])
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(
            host.tensor(&outcome.output),
            unhex(&case["output"]),
            "{label}"
        );
        *seen
            .entry(format!("{} {}", case["op"], case["dtype"]))
            .or_default() += 1;
    }
    // Every operator in both types, several times, the hybrid dense layer,
    // rank-5 tensors (ShuffleNet's channel shuffle among them) and GATHER
    // by indices the model reads at run time.
    assert_eq!(seen.len(), 170, "{seen:?}");
    assert!(seen.values().all(|&n| n >= 2), "{seen:?}");
}
