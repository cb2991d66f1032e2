//! `bench infer` on models of several inputs or outputs: a `.npz` with one
//! array per input, named as in the model, in; a `.npz` with one array per
//! output out (one input and one output keep `.npy`; a uint8 model takes
//! and gives uint8 arrays); a batch axis of 1
//! after N accepted. Expected values are LiteRT's (the public and one-op
//! goldens).

mod common;

use common::unhex;
use npyz::WriterBuilder;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn bench_infer(model: &Path, input: &Path, output: &Path) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(["infer", model.to_str().unwrap(), "--input"])
        .arg(input)
        .arg("--output")
        .arg(output)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs `bench infer` on `input`, which must fail; returns its stderr.
fn bench_infer_fails(model: &Path, input: &Path) -> String {
    let unused = input.with_extension("unused.npy");
    let o = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(["infer", model.to_str().unwrap(), "--input"])
        .arg(input)
        .arg("--output")
        .arg(&unused)
        .output()
        .unwrap();
    assert!(!o.status.success());
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write_i8(
    npz: &mut npyz::npz::NpzWriter<std::io::BufWriter<std::fs::File>>,
    name: &str,
    shape: &[u64],
    data: &[i8],
) {
    let options = zip::write::FileOptions::default();
    let mut w = npz
        .array::<i8>(name, options)
        .unwrap()
        .default_dtype()
        .shape(shape)
        .begin_nd()
        .unwrap();
    w.extend(data.iter().copied()).unwrap();
    w.finish().unwrap();
}

/// SplitMix64 as scripts/public-goldens.py draws int8 inputs.
fn drawn(seed: u64, n: usize) -> Vec<i8> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 56) as u8 as i8
        })
        .collect()
}

#[test]
fn two_inputs_come_from_a_npz_named_as_in_the_model() {
    let root = harness::workspace_root();
    let model = root.join("models/public/tfm_simple_add.tflite");
    let dir = tempfile::tempdir().unwrap();
    let n = 128 * 128;
    // Samples 0..3 of the golden, each input j drawn with seed k + 1000 j.
    let (a, b): (Vec<i8>, Vec<i8>) = (
        (0..3).flat_map(|k| drawn(k, n)).collect(),
        (0..3).flat_map(|k| drawn(k + 1000, n)).collect(),
    );
    let input = dir.path().join("in.npz");
    let mut npz = npyz::npz::NpzWriter::create(&input).unwrap();
    // The model's own batch axis of 1 kept after N: [N, 1, 128, 128, 1].
    write_i8(
        &mut npz,
        "serving_default_input_2:0",
        &[3, 1, 128, 128, 1],
        &b,
    );
    write_i8(&mut npz, "serving_default_input_1:0", &[3, 128, 128, 1], &a);
    drop(npz);
    let out = dir.path().join("out.npy");
    let said = bench_infer(&model, &input, &out);
    assert!(
        said.contains("3 of 3 equal to the host reference"),
        "{said}"
    );
    let got = npyz::NpyFile::new(std::fs::File::open(&out).unwrap()).unwrap();
    assert_eq!(got.shape(), &[3, 128, 128, 1]);
    let got = got.into_vec::<i8>().unwrap();
    let golden = root.join("harness/tests/golden/public/tfm_simple_add/outputs.npy");
    let golden = npyz::NpyFile::new(std::fs::File::open(golden).unwrap())
        .unwrap()
        .into_vec::<i8>()
        .unwrap();
    assert_eq!(got, golden[..3 * n]);
    // A .npy for a model of two inputs is refused with the names to use.
    let o = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(["infer", model.to_str().unwrap(), "--input"])
        .arg(&out)
        .arg("--output")
        .arg(dir.path().join("unused.npy"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("the model has 2 inputs (serving_default_input_1:0, serving_default_input_2:0); give a .npz with one array per input, named as in the model"),
        "{err}"
    );
}

/// The first one-operator golden of `op` in `dtype` (harness/tests/golden/one_op_models.json).
fn one_op_case(op: &str, dtype: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/one_op_models.json");
    let golden: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    golden["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["op"] == op && c["dtype"] == dtype)
        .unwrap()
        .clone()
}

#[test]
fn two_outputs_go_to_a_npz_named_as_in_the_model() {
    let case = one_op_case("two_outputs", "int8");
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("split.tflite");
    std::fs::write(&model, unhex(&case["model"])).unwrap();
    let graph = harness::model::tflite::load(&model).unwrap();
    let input_shape = graph.layout.item_dims(graph.tensors[graph.input].shape);
    let x: Vec<i8> = unhex(&case["inputs"][0]).iter().map(|&b| b as i8).collect();
    let input = dir.path().join("in.npy");
    {
        let mut w = npyz::WriteOptions::new()
            .default_dtype()
            .shape(&[&[1u64][..], &input_shape].concat())
            .writer(std::fs::File::create(&input).unwrap())
            .begin_nd()
            .unwrap();
        w.extend(x.iter().copied()).unwrap();
        w.finish().unwrap();
    }
    let out = dir.path().join("out.npz");
    bench_infer(&model, &input, &out);
    let mut npz = npyz::npz::NpzArchive::open(&out).unwrap();
    let parts = graph.output_parts();
    assert_eq!(parts.len(), 2);
    let mut all = Vec::new();
    for (name, _) in &parts {
        let array = npz
            .by_name(name)
            .unwrap()
            .unwrap_or_else(|| panic!("no array {name}"));
        all.extend(array.into_vec::<i8>().unwrap().iter().map(|&v| v as u8));
    }
    assert_eq!(all, unhex(&case["output"]));
}

#[test]
fn a_uint8_model_takes_and_gives_uint8_arrays() {
    let root = harness::workspace_root();
    let model = root.join("models/public/coral_mobilenet_v1_025_128_uint8.tflite");
    let dir = tempfile::tempdir().unwrap();
    let n = 128 * 128 * 3;
    // Samples 0 and 1 of the golden, as uint8.
    let x: Vec<u8> = (0..2).flat_map(|k| drawn(k, n)).map(|v| v as u8).collect();
    let input = dir.path().join("in.npy");
    {
        let mut w = npyz::WriteOptions::new()
            .default_dtype()
            .shape(&[2, 128, 128, 3])
            .writer(std::fs::File::create(&input).unwrap())
            .begin_nd()
            .unwrap();
        w.extend(x.iter().copied()).unwrap();
        w.finish().unwrap();
    }
    let out = dir.path().join("out.npy");
    let said = bench_infer(&model, &input, &out);
    assert!(
        said.contains("2 of 2 equal to the host reference"),
        "{said}"
    );
    let got = npyz::NpyFile::new(std::fs::File::open(&out).unwrap()).unwrap();
    assert_eq!(got.shape(), &[2, 1001]);
    let got = got.into_vec::<u8>().unwrap();
    let golden =
        root.join("harness/tests/golden/public/coral_mobilenet_v1_025_128_uint8/outputs.npy");
    let golden = npyz::NpyFile::new(std::fs::File::open(golden).unwrap())
        .unwrap()
        .into_vec::<u8>()
        .unwrap();
    assert_eq!(got, golden[..2 * 1001]);
    // int8 data for a uint8 input is refused with the type to give.
    let signed = dir.path().join("signed.npy");
    {
        let mut w = npyz::WriteOptions::new()
            .default_dtype()
            .shape(&[1, 128, 128, 3])
            .writer(std::fs::File::create(&signed).unwrap())
            .begin_nd()
            .unwrap();
        w.extend(drawn(0, n)).unwrap();
        w.finish().unwrap();
    }
    let err = bench_infer_fails(&model, &signed);
    assert!(
        err.contains("holds int8 [1, 128, 128, 3]; the model input"),
        "{err}"
    );
    assert!(
        err.contains("is uint8 [128, 128, 3]: give uint8 [N, 128, 128, 3]"),
        "{err}"
    );
}

#[test]
fn an_embedding_lookup_takes_int32_indices_and_refuses_one_outside_its_table() {
    // The first int8 GATHER-by-indices golden: int32 indices in, the
    // gathered int8 rows out, as LiteRT gave them.
    let case = one_op_case("gather_indices", "int8");
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("embedding.tflite");
    std::fs::write(&model, unhex(&case["model"])).unwrap();
    let indices: Vec<i32> = unhex(&case["inputs"][0])
        .chunks_exact(4)
        .map(|b| i32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let write_indices = |path: &Path, values: &[i32]| {
        let mut w = npyz::WriteOptions::new()
            .default_dtype()
            .shape(&[1, values.len() as u64])
            .writer(std::fs::File::create(path).unwrap())
            .begin_nd()
            .unwrap();
        w.extend(values.iter().copied()).unwrap();
        w.finish().unwrap();
    };
    let input = dir.path().join("ids.npy");
    write_indices(&input, &indices);
    let out = dir.path().join("out.npy");
    bench_infer(&model, &input, &out);
    let got = npyz::NpyFile::new(std::fs::File::open(&out).unwrap())
        .unwrap()
        .into_vec::<i8>()
        .unwrap();
    let want: Vec<i8> = unhex(&case["output"]).iter().map(|&b| b as i8).collect();
    assert_eq!(got, want);
    // An index past the table is the run's error, not a read out of bounds.
    let mut bad = indices.clone();
    bad[0] = 1 << 20;
    write_indices(&input, &bad);
    let err = bench_infer_fails(&model, &input);
    assert!(
        err.contains("gather: an index is outside its axis"),
        "{err}"
    );
}

/// An ONNX model takes and gives arrays in its own NCHW layout: `bench
/// infer` transposes at the boundary, so onnxruntime's input gives
/// onnxruntime's output (the first Conv case of `golden/onnx_ops.json`:
/// 2 channels in, 3 out, neither 1, so the orders really differ).
#[test]
fn an_onnx_model_reads_and_writes_nchw_arrays() {
    let path = harness::workspace_root().join("harness/tests/golden/onnx_ops.json");
    let golden: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let case = &golden["cases"][0];
    assert_eq!(case["name"], "Conv-explicit-0");
    let shape = |key: &str| -> Vec<u64> {
        let dims = case[key].as_array().unwrap().iter();
        dims.map(|d| d.as_u64().unwrap()).collect()
    };
    assert_eq!(
        (shape("input_shape"), shape("output_shape")),
        (vec![1, 2, 5, 9], vec![1, 3, 3, 10])
    );
    let floats = |key: &str| -> Vec<f32> {
        let bytes = unhex(&case[key]);
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect()
    };
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("conv.onnx");
    std::fs::write(&model, unhex(&case["model"])).unwrap();
    let input = dir.path().join("in.npy");
    {
        let mut w = npyz::WriteOptions::new()
            .default_dtype()
            .shape(&shape("input_shape"))
            .writer(std::fs::File::create(&input).unwrap())
            .begin_nd()
            .unwrap();
        w.extend(floats("input")).unwrap();
        w.finish().unwrap();
    }
    let out = dir.path().join("out.npy");
    bench_infer(&model, &input, &out);
    let array = npyz::NpyFile::new(std::fs::File::open(&out).unwrap()).unwrap();
    assert_eq!(array.shape(), [1, 3, 3, 10]);
    let got: Vec<f32> = array.into_vec().unwrap();
    let want = floats("output");
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-5 * w.abs().max(1.0),
            "element {i}: {g}, onnxruntime's {w}"
        );
    }
    // An array in bench's own NHWC order is refused, naming the layout it wants.
    let nhwc = dir.path().join("nhwc.npy");
    {
        let mut w = npyz::WriteOptions::<f32>::new()
            .default_dtype()
            .shape(&[1, 5, 9, 2])
            .writer(std::fs::File::create(&nhwc).unwrap())
            .begin_nd()
            .unwrap();
        w.extend(floats("input")).unwrap();
        w.finish().unwrap();
    }
    let err = bench_infer_fails(&model, &nhwc);
    assert!(err.contains("[2, 5, 9]"), "{err}");
}
