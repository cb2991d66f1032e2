//! Imported MLPerf Tiny models against the TFLite reference kernels: the
//! goldens in tests/golden/ were written by scripts/tflite-goldens.py with
//! LiteRT's BUILTIN_REF op resolver, and every byte must match.

use harness::model::host::HostModel;
use harness::model::lower::{self, Int8Options, Lowered, Placement};
use harness::model::{tflite, Graph, LayerOp};
use std::path::{Path, PathBuf};

const MODELS: [&str; 2] = ["kws_ref_model", "pretrainedResnet_quant"];

fn model_path(name: &str) -> PathBuf {
    harness::workspace_root().join("models/mlperf-tiny").join(format!("{name}.tflite"))
}

fn golden(name: &str, file: &str) -> (Vec<u64>, Vec<i8>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name).join(file);
    let npy = npyz::NpyFile::new(std::fs::File::open(&path).unwrap()).unwrap();
    (npy.shape().to_vec(), npy.into_vec::<i8>().unwrap())
}

/// The model lowered with every tensor kept, so intermediates can be read after a run.
fn lowered(graph: &Graph) -> Lowered {
    lower::lower_int8(graph, &[], Int8Options { placement: Placement::Unshared, ..Int8Options::default() }).unwrap()
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
        let softmax = graph.layers.iter().find(|l| matches!(l.op, LayerOp::Softmax { .. })).unwrap();
        let logits_desc = low.tensors[softmax.inputs[0]];
        let (in_len, out_len, logit_len) = (inputs.len() / count, outputs.len() / count, logits.len() / count);
        for i in 0..count {
            let input: &[u8] = bytemuck::cast_slice(&inputs[i * in_len..(i + 1) * in_len]);
            let outcome = host.run(input, &[]).unwrap();
            let got: &[i8] = bytemuck::cast_slice(host.tensor(&logits_desc));
            assert_eq!(got, &logits[i * logit_len..(i + 1) * logit_len], "{name}: logits of input {i}");
            let got: &[i8] = bytemuck::cast_slice(host.tensor(&outcome.output));
            assert_eq!(got, &outputs[i * out_len..(i + 1) * out_len], "{name}: output of input {i}");
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
        host.run(bytemuck::cast_slice(&inputs[..in_len]), &[]).unwrap();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name);
        let names: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(dir.join("tensors.json")).unwrap()).unwrap();
        assert_eq!(names.len(), graph.layers.len(), "{name}: one golden per operator output");
        for (file, tensor_name) in &names {
            let t =
                graph.tensors.iter().position(|t| Some(t.name.as_str()) == tensor_name.as_str()).unwrap_or_else(|| panic!("{name}: no tensor {tensor_name}"));
            let (_, want) = golden(name, file);
            let got: &[i8] = bytemuck::cast_slice(host.tensor(&low.tensors[t]));
            assert_eq!(got, &want[..], "{name}: tensor {file} ({tensor_name})");
        }
    }
}

/// A one-operator model `[1, 4] int8 -> op -> [1, 4] int8`, built with the
/// generated flatbuffer bindings: `builtin` is the operator code, `custom` a
/// custom operator's name.
fn one_op_model(builtin: i32, custom: Option<&str>) -> Vec<u8> {
    use flatbuffers::FlatBufferBuilder;
    use harness::model::tflite_schema::tflite as fb;
    let mut b = FlatBufferBuilder::new();
    let tensor = |b: &mut FlatBufferBuilder<'static>, name: &str| {
        let (shape, scale, zero_point, name) = (b.create_vector(&[1, 4]), b.create_vector(&[0.5f32]), b.create_vector(&[0i64]), b.create_string(name));
        let quantization =
            fb::QuantizationParameters::create(b, &fb::QuantizationParametersArgs { scale: Some(scale), zero_point: Some(zero_point), ..Default::default() });
        fb::Tensor::create(
            b,
            &fb::TensorArgs { shape: Some(shape), type_: fb::TensorType::INT8, name: Some(name), quantization: Some(quantization), ..Default::default() },
        )
    };
    let tensors = [tensor(&mut b, "x"), tensor(&mut b, "y")];
    let tensors = b.create_vector(&tensors);
    let (op_in, op_out) = (b.create_vector(&[0, 0]), b.create_vector(&[1]));
    let operator = fb::Operator::create(&mut b, &fb::OperatorArgs { inputs: Some(op_in), outputs: Some(op_out), ..Default::default() });
    let operators = b.create_vector(&[operator]);
    let (inputs, outputs) = (b.create_vector(&[0]), b.create_vector(&[1]));
    let subgraph = fb::SubGraph::create(
        &mut b,
        &fb::SubGraphArgs { tensors: Some(tensors), inputs: Some(inputs), outputs: Some(outputs), operators: Some(operators), ..Default::default() },
    );
    let custom_code = custom.map(|c| b.create_string(c));
    let code = fb::OperatorCode::create(
        &mut b,
        &fb::OperatorCodeArgs { builtin_code: builtin, deprecated_builtin_code: builtin.min(127) as i8, custom_code, version: 1 },
    );
    let (codes, subgraphs) = (b.create_vector(&[code]), b.create_vector(&[subgraph]));
    let empty = fb::Buffer::create(&mut b, &fb::BufferArgs::default());
    let buffers = b.create_vector(&[empty]);
    let model = fb::Model::create(
        &mut b,
        &fb::ModelArgs { version: 3, operator_codes: Some(codes), subgraphs: Some(subgraphs), buffers: Some(buffers), ..Default::default() },
    );
    fb::finish_model_buffer(&mut b, model);
    b.finished_data().to_vec()
}

#[test]
fn an_unsupported_operator_is_named_with_its_index_and_the_model_file() {
    let path = Path::new("models/tiny.tflite");
    let err = tflite::import(&one_op_model(18, None), "tiny", path).unwrap_err();
    assert_eq!(err.to_string(), "failed to import models/tiny.tflite: operator 0 (MUL): this operator is not supported");
    let err = tflite::import(&one_op_model(32, Some("LceBconv2d")), "tiny", path).unwrap_err();
    assert_eq!(err.to_string(), "failed to import models/tiny.tflite: operator 0 (custom operator 'LceBconv2d'): custom operators are not supported");
    let err = tflite::import(&one_op_model(150, None), "tiny", path).unwrap_err();
    assert_eq!(err.to_string(), "failed to import models/tiny.tflite: operator 0 (builtin operator 150): this operator is not supported");
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
    let err = tflite::import(&bytes[..1000], "kws", Path::new("kws.tflite")).unwrap_err().to_string();
    assert!(err.starts_with("failed to import kws.tflite: not a valid TFLite flatbuffer ("), "{err}");
    let err = tflite::import(b"not a model", "x", Path::new("x.tflite")).unwrap_err().to_string();
    assert!(err.starts_with("failed to import x.tflite: not a valid TFLite flatbuffer ("), "{err}");
}

/// Imports `bytes`; where that works, lowers the model as it is and runs it
/// once on a zero input. Returns whether it ran. Any panic fails the test.
fn load_and_run(bytes: &[u8]) -> bool {
    let Ok(graph) = tflite::import(bytes, "corrupt", Path::new("corrupt.tflite")) else { return false };
    let Ok(prepared) = harness::infer::as_is(&graph) else { return false };
    let Ok(mut host) = HostModel::new(prepared.lowered.blob.as_bytes()) else { return false };
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
        let lengths = (0..1024).step_by(7).chain((1..200).map(|i| bytes.len() * i / 200));
        for len in lengths {
            assert!(!load_and_run(&bytes[..len]), "{name}: a file truncated to {len} bytes ran");
        }
        // Byte flips: 250 anywhere, 250 in the first and 250 in the last 4 KiB,
        // where the tables and vectors of a TFLite file mostly live.
        let span = 4096.min(bytes.len());
        let mut flip = |from: usize, within: usize| (from + rng.next_u64() as usize % within, (rng.next_u32() % 255 + 1) as u8);
        let regions = [(0, bytes.len()), (0, span), (bytes.len() - span, span)];
        let cases: Vec<(usize, u8)> = regions.iter().flat_map(|&(from, within)| vec![(from, within); 250]).map(|(from, within)| flip(from, within)).collect();
        for (at, xor) in cases {
            let mut corrupt = bytes.clone();
            corrupt[at] ^= xor;
            ran += usize::from(load_and_run(&corrupt));
        }
        // Most flips land in weights, which still load and run: the test saw both outcomes.
        assert!(ran > 100 && ran < 750, "{name}: {ran} of 750 corrupted models ran");
    }
}
