//! Imported MLPerf Tiny models against the TFLite reference kernels: the
//! goldens in tests/golden/ were written by scripts/tflite-goldens.py with
//! LiteRT's BUILTIN_REF op resolver, and every byte must match.

use harness::model::host::HostModel;
use harness::model::lower::{self, Int8Options, Lowered, Placement};
use harness::model::prepare::{self, Calibration, Recipe, Scheme};
use harness::model::{tflite, Graph, LayerOp};
use std::path::{Path, PathBuf};

const MODELS: [&str; 2] = ["kws_ref_model", "pretrainedResnet_quant"];

fn model_path(name: &str) -> PathBuf {
    harness::workspace_root()
        .join("models/mlperf-tiny")
        .join(format!("{name}.tflite"))
}

fn golden(name: &str, file: &str) -> (Vec<u64>, Vec<i8>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
        .join(file);
    let npy = npyz::NpyFile::new(std::fs::File::open(&path).unwrap()).unwrap();
    (npy.shape().to_vec(), npy.into_vec::<i8>().unwrap())
}

/// The model lowered with every tensor kept, so intermediates can be read after a run.
fn lowered(graph: &Graph) -> Lowered {
    lower::lower_int8(
        graph,
        &[],
        Int8Options {
            placement: Placement::Unshared,
            ..Int8Options::default()
        },
    )
    .unwrap()
}

#[test]
fn imported_models_reproduce_every_golden_output_and_logit_byte_for_byte() {
    for name in MODELS {
        let graph = tflite::load(&model_path(name)).unwrap();
        let low = lowered(&graph);
        let mut host = HostModel::new(low.blob.as_bytes()).unwrap();
        let (in_shape, inputs) = golden(name, "inputs.npy");
        let (_, outputs) = golden(name, "outputs.npy");
        let (_, logits) = golden(name, "logits.npy");
        let count = in_shape[0] as usize;
        assert!(count >= 20, "{name}: only {count} golden inputs");
        let softmax = graph
            .layers
            .iter()
            .find(|l| matches!(l.op, LayerOp::Softmax { .. }))
            .unwrap();
        let logits_desc = low.tensors[softmax.inputs[0]];
        let (in_len, out_len, logit_len) = (
            inputs.len() / count,
            outputs.len() / count,
            logits.len() / count,
        );
        for i in 0..count {
            let input: &[u8] = bytemuck::cast_slice(&inputs[i * in_len..(i + 1) * in_len]);
            let outcome = host.run(input, &[]).unwrap();
            let got: &[i8] = bytemuck::cast_slice(host.tensor(&logits_desc));
            assert_eq!(
                got,
                &logits[i * logit_len..(i + 1) * logit_len],
                "{name}: logits of input {i}"
            );
            let got: &[i8] = bytemuck::cast_slice(host.tensor(&outcome.output));
            assert_eq!(
                got,
                &outputs[i * out_len..(i + 1) * out_len],
                "{name}: output of input {i}"
            );
        }
    }
}

#[test]
fn imported_models_reproduce_every_intermediate_tensor_of_the_first_input() {
    for name in MODELS {
        let graph = tflite::load(&model_path(name)).unwrap();
        let low = lowered(&graph);
        let mut host = HostModel::new(low.blob.as_bytes()).unwrap();
        let (in_shape, inputs) = golden(name, "inputs.npy");
        let in_len = inputs.len() / in_shape[0] as usize;
        host.run(bytemuck::cast_slice(&inputs[..in_len]), &[])
            .unwrap();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(name);
        let names: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&std::fs::read_to_string(dir.join("tensors.json")).unwrap())
                .unwrap();
        assert_eq!(
            names.len(),
            graph.layers.len(),
            "{name}: one golden per operator output"
        );
        for (file, tensor_name) in &names {
            let t = graph
                .tensors
                .iter()
                .position(|t| Some(t.name.as_str()) == tensor_name.as_str())
                .unwrap_or_else(|| panic!("{name}: no tensor {tensor_name}"));
            let (_, want) = golden(name, file);
            let got: &[i8] = bytemuck::cast_slice(host.tensor(&low.tensors[t]));
            assert_eq!(got, &want[..], "{name}: tensor {file} ({tensor_name})");
        }
    }
}

/// One tensor of a test model: name, type and per-tensor quantization,
/// and for a constant its shape and data.
#[derive(Default)]
struct TestTensor {
    name: &'static str,
    int8: Option<(f32, i64)>,
    constant: Option<(Vec<i32>, Vec<u8>)>,
    /// An activation's shape, if not `[1, 4]`.
    shape: Option<Vec<i32>>,
    /// An int32 tensor (indices, paddings, axes) rather than float32 or int8.
    int32: bool,
}

/// One operator of a test model: builtin code, custom name, input and output tensors.
type TestOp<'a> = (i32, Option<&'a str>, &'a [i32], &'a [i32]);

/// A model built with the generated flatbuffer bindings: `ops` are
/// `(builtin code, custom name, inputs, outputs)`; the first tensor is the
/// model input, the last its output.
fn test_model(tensors: &[TestTensor], ops: &[TestOp]) -> Vec<u8> {
    use flatbuffers::FlatBufferBuilder;
    use harness::model::tflite_schema::tflite as fb;
    let mut b = FlatBufferBuilder::new();
    let mut tensor_offsets = Vec::new();
    let mut buffer_offsets = vec![fb::Buffer::create(&mut b, &fb::BufferArgs::default())];
    for t in tensors {
        let buffer = match &t.constant {
            Some((_, data)) => {
                let data = b.create_vector(data);
                buffer_offsets.push(fb::Buffer::create(
                    &mut b,
                    &fb::BufferArgs {
                        data: Some(data),
                        ..Default::default()
                    },
                ));
                buffer_offsets.len() as u32 - 1
            }
            None => 0,
        };
        let dims = t
            .constant
            .as_ref()
            .map(|(dims, _)| dims.clone())
            .or(t.shape.clone())
            .unwrap_or(vec![1, 4]);
        let (shape, name) = (b.create_vector(&dims), b.create_string(t.name));
        let (type_, quantization) = match t.int8 {
            Some((scale, zero_point)) => {
                let zero_point = fb::UnalignedI64::new(&zero_point.to_le_bytes());
                let (scale, zero_point) =
                    (b.create_vector(&[scale]), b.create_vector(&[zero_point]));
                let args = fb::QuantizationParametersArgs {
                    scale: Some(scale),
                    zero_point: Some(zero_point),
                    ..Default::default()
                };
                (
                    fb::TensorType::INT8,
                    Some(fb::QuantizationParameters::create(&mut b, &args)),
                )
            }
            None if t.int32 => (fb::TensorType::INT32, None),
            None => (fb::TensorType::FLOAT32, None),
        };
        let args = fb::TensorArgs {
            shape: Some(shape),
            type_,
            buffer,
            name: Some(name),
            quantization,
            ..Default::default()
        };
        tensor_offsets.push(fb::Tensor::create(&mut b, &args));
    }
    let tensors_vec = b.create_vector(&tensor_offsets);
    let mut op_offsets = Vec::new();
    let mut code_offsets = Vec::new();
    for (index, (builtin, custom, inputs, outputs)) in ops.iter().enumerate() {
        let (op_in, op_out) = (b.create_vector(inputs), b.create_vector(outputs));
        let args = fb::OperatorArgs {
            opcode_index: index as u32,
            inputs: Some(op_in),
            outputs: Some(op_out),
            ..Default::default()
        };
        op_offsets.push(fb::Operator::create(&mut b, &args));
        let custom_code = custom.map(|c| b.create_string(c));
        let args = fb::OperatorCodeArgs {
            builtin_code: *builtin,
            deprecated_builtin_code: (*builtin).min(127) as i8,
            custom_code,
            version: 1,
        };
        code_offsets.push(fb::OperatorCode::create(&mut b, &args));
    }
    let operators = b.create_vector(&op_offsets);
    let (inputs, outputs) = (
        b.create_vector(&[0]),
        b.create_vector(&[tensors.len() as i32 - 1]),
    );
    let args = fb::SubGraphArgs {
        tensors: Some(tensors_vec),
        inputs: Some(inputs),
        outputs: Some(outputs),
        operators: Some(operators),
        ..Default::default()
    };
    let subgraph = fb::SubGraph::create(&mut b, &args);
    let (codes, subgraphs) = (b.create_vector(&code_offsets), b.create_vector(&[subgraph]));
    let buffers = b.create_vector(&buffer_offsets);
    let args = fb::ModelArgs {
        version: 3,
        operator_codes: Some(codes),
        subgraphs: Some(subgraphs),
        buffers: Some(buffers),
        ..Default::default()
    };
    let model = fb::Model::create(&mut b, &args);
    fb::finish_model_buffer(&mut b, model);
    b.finished_data().to_vec()
}

/// A one-operator model `[1, 4] int8 -> op -> [1, 4] int8` (scale 0.5, zero point 0).
fn one_op_model(builtin: i32, custom: Option<&str>) -> Vec<u8> {
    let tensors = [
        TestTensor {
            name: "x",
            int8: Some((0.5, 0)),
            ..Default::default()
        },
        TestTensor {
            name: "y",
            int8: Some((0.5, 0)),
            ..Default::default()
        },
    ];
    test_model(&tensors, &[(builtin, custom, &[0, 0], &[1])])
}

#[test]
fn quantize_and_dequantize_bracket_an_int8_model_with_float_input_and_output() {
    // float x -> QUANTIZE (0.5, 1) -> q -> DEQUANTIZE -> float y
    let tensors = [
        TestTensor {
            name: "x",
            ..Default::default()
        },
        TestTensor {
            name: "q",
            int8: Some((0.5, 1)),
            ..Default::default()
        },
        TestTensor {
            name: "y",
            ..Default::default()
        },
    ];
    let bytes = test_model(&tensors, &[(114, None, &[0], &[1]), (6, None, &[1], &[2])]);
    let graph = tflite::import(&bytes, "qdq", Path::new("qdq.tflite")).unwrap();
    assert_eq!(
        graph
            .layers
            .iter()
            .map(|l| l.name.as_str())
            .collect::<Vec<_>>(),
        ["quantize_0", "dequantize_1"]
    );
    let low = lowered(&graph);
    let mut host = HostModel::new(low.blob.as_bytes()).unwrap();
    let input = [-1.0f32, 0.25, 0.75, 100.0];
    let outcome = host.run(bytemuck::cast_slice(&input), &[]).unwrap();
    // TFLite: q = clamp(round_half_away(x / 0.5) + 1) = [-1, 2, 3, 127]; y = 0.5 * (q - 1).
    let q: &[i8] = bytemuck::cast_slice(host.tensor(&low.tensors[1]));
    assert_eq!(q, [-1, 2, 3, 127]);
    let y: &[f32] = bytemuck::cast_slice(host.tensor(&outcome.output));
    assert_eq!(y, [-1.0, 0.5, 1.0, 63.0]);
    // QUANTIZE from int8 to int8 requantizes: 0.5 (zero point 1) to 0.25 (zero point 1).
    let tensors = [
        TestTensor {
            name: "x",
            ..Default::default()
        },
        TestTensor {
            name: "q",
            int8: Some((0.5, 1)),
            ..Default::default()
        },
        TestTensor {
            name: "r",
            int8: Some((0.25, 1)),
            ..Default::default()
        },
    ];
    let bytes = test_model(
        &tensors,
        &[(114, None, &[0], &[1]), (114, None, &[1], &[2])],
    );
    let graph = tflite::import(&bytes, "requantize", Path::new("requantize.tflite")).unwrap();
    let low = lowered(&graph);
    let mut host = HostModel::new(low.blob.as_bytes()).unwrap();
    let outcome = host.run(bytemuck::cast_slice(&input), &[]).unwrap();
    // q - 1 = [-2, 1, 2, 126], doubled, plus 1, clamped: [-3, 3, 5, 127].
    let r: &[i8] = bytemuck::cast_slice(host.tensor(&outcome.output));
    assert_eq!(r, [-3, 3, 5, 127]);
}

#[test]
fn a_float32_model_imports_with_its_float_weights_and_quantizes_by_calibration() {
    // x [1, 4] -> FULLY_CONNECTED (weights [2, 4], bias [2], RELU-free) -> y [1, 2], all float32.
    let floats = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let weights = TestTensor {
        name: "w",
        constant: Some((
            vec![2, 4],
            floats(&[1.0, 2.0, 3.0, 4.0, -1.0, 0.5, 0.0, 2.0]),
        )),
        ..Default::default()
    };
    let bias = TestTensor {
        name: "b",
        constant: Some((vec![2], floats(&[0.5, -0.25]))),
        ..Default::default()
    };
    let tensors = [
        TestTensor {
            name: "x",
            ..Default::default()
        },
        weights,
        bias,
        TestTensor {
            name: "y",
            shape: Some(vec![1, 2]),
            ..Default::default()
        },
    ];
    let graph = tflite::import(
        &test_model(&tensors, &[(9, None, &[0, 1, 2], &[3])]),
        "fc",
        Path::new("fc.tflite"),
    )
    .unwrap();
    assert_eq!((graph.params(), graph.macs()), (10, 8));
    assert!(graph.layers[0].int8.is_none() && graph.tensors.iter().all(|t| t.quant.is_none()));
    let prepared = harness::pipeline::infer::as_is(&graph).unwrap();
    let mut host = HostModel::new(prepared.lowered.blob.as_bytes()).unwrap();
    let x = [1.0f32, -1.0, 0.5, 0.25];
    let outcome = host.run(bytemuck::cast_slice(&x), &[]).unwrap();
    // [1 - 2 + 1.5 + 1 + 0.5, -1 - 0.5 + 0 + 0.5 - 0.25]
    assert_eq!(
        bytemuck::cast_slice::<u8, f32>(host.tensor(&outcome.output)),
        [2.0, -1.25]
    );
    // int8 by post-training calibration, like a zoo model: int8 in and out, every tensor quantized.
    let recipe = Recipe {
        scheme: Scheme::Int8 { per_channel: true },
        overrides: Vec::new(),
        pruning: None,
        exits: None,
        weight_seed: 1,
        calibration: Calibration::Synthetic(8, 1),
        input_seed: 1,
        memory: Default::default(),
    };
    let int8 = prepare::prepare(&graph, &recipe).unwrap();
    assert!(int8
        .lowered
        .tensors
        .iter()
        .all(|t| t.dtype == kernels::model::DType::I8));
    assert_eq!(int8.input.len(), 4);
}

#[test]
fn an_unsupported_operator_is_named_with_its_index_and_the_model_file() {
    let path = Path::new("models/tiny.tflite");
    let err = tflite::import(&one_op_model(15, None), "tiny", path).unwrap_err();
    assert_eq!(
        err.to_string(),
        "failed to import models/tiny.tflite: operator 0 (LSH_PROJECTION): this operator is not supported"
    );
    // LCE's operators are read, and say what is wrong with one; other custom operators are refused.
    let err = tflite::import(&one_op_model(32, Some("LceBconv2d")), "tiny", path).unwrap_err();
    assert_eq!(err.to_string(), "failed to import models/tiny.tflite: operator 0 (custom operator 'LceBconv2d'): it has no custom options");
    let err = tflite::import(
        &one_op_model(32, Some("TFLite_Detection_PostProcess")),
        "tiny",
        path,
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "failed to import models/tiny.tflite: operator 0 (custom operator 'TFLite_Detection_PostProcess'): custom operators are not supported (bench reads LCE's LceQuantize, LceDequantize, LceBconv2d and LceBMaxPool2d)");
    // A code newer than the schema bench reads is named by its number.
    let err = tflite::import(&one_op_model(4000, None), "tiny", path).unwrap_err();
    assert_eq!(err.to_string(), "failed to import models/tiny.tflite: operator 0 (builtin operator 4000): this operator is not supported");
}

#[test]
fn an_input_that_must_be_constant_but_is_computed_is_named() {
    // float x -> MEAN -> m; PADV2(x, paddings, m): TFLite allows a computed
    // pad value, bench needs it in the file.
    let int32 = |name, dims: Vec<i32>, values: &[i32]| TestTensor {
        name,
        int32: true,
        constant: Some((dims, values.iter().flat_map(|v| v.to_le_bytes()).collect())),
        ..Default::default()
    };
    let activation = |name, shape: Vec<i32>| TestTensor {
        name,
        shape: Some(shape),
        ..Default::default()
    };
    let tensors = [
        activation("x", vec![1, 4]),
        int32("axes", vec![1], &[1]),
        activation("m", vec![1]),
        int32("paddings", vec![2, 2], &[0, 0, 1, 1]),
        activation("y", vec![1, 6]),
    ];
    let model = test_model(
        &tensors,
        &[(40, None, &[0, 1], &[2]), (60, None, &[0, 3, 2], &[4])],
    );
    let err = tflite::import(&model, "pad", Path::new("pad.tflite")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "failed to import pad.tflite: operator 1 (PADV2): its input 2 is computed at run time; bench needs it to be a constant of the model"
    );
}

#[test]
fn a_supported_operator_with_a_wrong_option_is_refused() {
    // RESHAPE of [1, 4] to [1, 4] loads; SOFTMAX must output 1/256, -128, and this one outputs 0.5, 0.
    assert!(tflite::import(&one_op_model(22, None), "tiny", Path::new("t.tflite")).is_ok());
    let err = tflite::import(&one_op_model(25, None), "tiny", Path::new("t.tflite")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "failed to import t.tflite: operator 0 (SOFTMAX): an int8 softmax must output scale 1/256 and zero point -128 (the TFLite int8 specification)"
    );
}

#[test]
fn a_truncated_or_foreign_file_is_an_error() {
    let bytes = std::fs::read(model_path("kws_ref_model")).unwrap();
    let err = tflite::import(&bytes[..1000], "kws", Path::new("kws.tflite"))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("failed to import kws.tflite: not a valid TFLite flatbuffer ("),
        "{err}"
    );
    let err = tflite::import(b"not a model", "x", Path::new("x.tflite"))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("failed to import x.tflite: not a valid TFLite flatbuffer ("),
        "{err}"
    );
}

/// Imports `bytes`; where that works, lowers the model as it is and runs it
/// once on a zero input. Returns whether it ran. Any panic fails the test.
fn load_and_run(bytes: &[u8]) -> bool {
    let Ok(graph) = tflite::import(bytes, "corrupt", Path::new("corrupt.tflite")) else {
        return false;
    };
    let Ok(prepared) = harness::pipeline::infer::as_is(&graph) else {
        return false;
    };
    let Ok(mut host) = HostModel::new(prepared.lowered.blob.as_bytes()) else {
        return false;
    };
    host.run(&vec![0; prepared.input.len()], &[]).is_ok()
}

#[test]
fn truncated_and_bit_flipped_models_give_errors_never_panics_or_hangs() {
    use rand_chacha::rand_core::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    for name in MODELS {
        let bytes = std::fs::read(model_path(name)).unwrap();
        assert!(load_and_run(&bytes), "{name}: the intact model must run");
        let mut ran = 0;
        // Truncations: every length up to 1 KiB in steps of 7, then every 1/200 of the file.
        let lengths = (0..1024)
            .step_by(7)
            .chain((1..200).map(|i| bytes.len() * i / 200));
        for len in lengths {
            assert!(
                !load_and_run(&bytes[..len]),
                "{name}: a file truncated to {len} bytes ran"
            );
        }
        // Byte flips: 250 anywhere, 250 in the first and 250 in the last 4 KiB,
        // where the tables and vectors of a TFLite file mostly live.
        let span = 4096.min(bytes.len());
        let mut flip = |from: usize, within: usize| {
            (
                from + rng.next_u64() as usize % within,
                (rng.next_u32() % 255 + 1) as u8,
            )
        };
        let regions = [(0, bytes.len()), (0, span), (bytes.len() - span, span)];
        let cases: Vec<(usize, u8)> = regions
            .iter()
            .flat_map(|&(from, within)| vec![(from, within); 250])
            .map(|(from, within)| flip(from, within))
            .collect();
        for (at, xor) in cases {
            let mut corrupt = bytes.clone();
            corrupt[at] ^= xor;
            ran += usize::from(load_and_run(&corrupt));
        }
        // Most flips land in weights, which still load and run: the test saw both outcomes.
        assert!(
            ran > 100 && ran < 750,
            "{name}: {ran} of 750 corrupted models ran"
        );
    }
}

/// A model whose int64 zero-point vectors sit 4 bytes off 8-byte alignment
/// (as Silicon Labs' converter writes them; scripts/unaligned-fixture.py
/// made this one): LiteRT loads it, so bench must, with the verifier's
/// bounds checks kept. The expected output is LiteRT's.
#[test]
fn zero_points_off_their_alignment_are_read_as_litert_reads_them() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/unaligned_zero_point.tflite");
    let graph = tflite::load(&path).unwrap();
    assert_eq!(graph.tensors[0].quant, Some((0.05, 3)));
    let low = lower::lower_int8(&graph, &[], Int8Options::default()).unwrap();
    let mut host = HostModel::new(low.blob.as_bytes()).unwrap();
    let input: Vec<u8> = (-24i8..24).map(|v| v as u8).collect();
    let outcome = host.run(&input, &[]).unwrap();
    let expected: Vec<u8> = (-24i8..24).map(|v| v.max(3) as u8).collect();
    assert_eq!(host.tensor(&outcome.output), expected);
}
