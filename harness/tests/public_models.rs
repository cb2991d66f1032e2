//! Public microcontroller models (models/public: TFLM's magic wand, MCUNet
//! from TinyEngine, a PyTorch MobileNetV2 export, Coral's uint8 MobileNet
//! v1, TFLM's integer-LSTM MNIST; and a 16x8 model from TensorFlow's
//! converter, models/exported) against the TFLite
//! reference kernels. scripts/public-goldens.py ran LiteRT's BUILTIN_REF
//! resolver on 16 generated inputs; here the same inputs are generated
//! again and every output byte must match.

use harness::model::host::HostModel;
use harness::model::lower::{self, Int8Options};
use harness::model::tflite;
use std::path::Path;

/// `(folder under models/, model)`: the public models, and the 16x8 model
/// scripts/export-int16x8.py makes with TensorFlow's converter.
const MODELS: [(&str, &str); 8] = [
    ("public", "tfm_simple_add"),
    ("public", "tfm_mnist_lstm_int8"),
    ("public", "coral_mobilenet_v1_025_128_uint8"),
    ("public", "mlperf_toycar_quant"),
    ("public", "arduino_magic_wand"),
    ("public", "tinyengine_mcunet_vww"),
    ("public", "tfm_mobilenet_v2_pytorch_int8"),
    ("exported", "kws_dscnn_int16x8"),
];
const COUNT: u64 = 16;

/// SplitMix64, as scripts/public-goldens.py draws the inputs.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Input `seed` of `n` elements as bytes: int8 and uint8 from the top byte of each
/// draw, float32 from its top 24 bits as a multiple of 2^-23 in [-1, 1).
fn input(seed: u64, n: usize, float: bool) -> Vec<u8> {
    let mut state = seed;
    (0..n)
        .flat_map(|_| {
            let d = splitmix64(&mut state);
            if float {
                ((d >> 40) as f32 / (1u32 << 23) as f32 - 1.0)
                    .to_le_bytes()
                    .to_vec()
            } else {
                vec![(d >> 56) as u8]
            }
        })
        .collect()
}

/// The golden outputs as raw bytes, and the byte length of one.
fn golden(name: &str) -> (Vec<u8>, usize) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/public")
        .join(name)
        .join("outputs.npy");
    let npy = npyz::NpyFile::new(std::fs::File::open(&path).unwrap()).unwrap();
    let shape = npy.shape().to_vec();
    assert_eq!(shape[0], COUNT, "{name}: golden count");
    let bytes: Vec<u8> = match npy.dtype().descr().contains("f4") {
        true => npy
            .into_vec::<f32>()
            .unwrap()
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        false if npy.dtype().descr().contains("u1") => npy.into_vec::<u8>().unwrap(),
        false => npy
            .into_vec::<i8>()
            .unwrap()
            .iter()
            .map(|&v| v as u8)
            .collect(),
    };
    let one = bytes.len() / COUNT as usize;
    (bytes, one)
}

/// A model as bench runs it: a float model (int8 weights at most) in
/// float, as published; a quantized one in its integer types.
fn lowered(graph: &harness::model::Graph) -> lower::Lowered {
    let quantized = graph.tensors.iter().any(|t| t.quant.is_some());
    if quantized {
        lower::lower_int8(graph, &[], Int8Options::default())
    } else {
        lower::lower_f32(graph)
    }
    .unwrap()
}

fn model_path(folder: &str, name: &str) -> std::path::PathBuf {
    harness::workspace_root()
        .join("models")
        .join(folder)
        .join(format!("{name}.tflite"))
}

/// The planned arena of every model, exact, and below TFLite Micro's
/// `arena_used_bytes()` for the same file on qemu-m4 (TFLM's reference
/// kernels, measured by `bench run suites/public-models.toml`, run
/// 20261204T030324Z; `None` where TFLM refuses the model).
#[test]
fn planned_arenas_are_below_tflms() {
    let expected: [(&str, usize, Option<usize>); 8] = [
        ("tfm_simple_add", 49_152, Some(49_604)),
        ("tfm_mnist_lstm_int8", 1_616, Some(3_220)),
        ("coral_mobilenet_v1_025_128_uint8", 98_304, None),
        ("mlperf_toycar_quant", 3_072, None),
        ("arduino_magic_wand", 7_168, Some(9_156)),
        ("tinyengine_mcunet_vww", 96_000, Some(219_744)),
        ("tfm_mobilenet_v2_pytorch_int8", 1_505_280, Some(2_600_548)),
        ("kws_dscnn_int16x8", 18_000, Some(22_192)),
    ];
    for ((folder, name), (want_name, arena, tflm)) in MODELS.into_iter().zip(expected) {
        assert_eq!(name, want_name);
        let low = lowered(&tflite::load(&model_path(folder, name)).unwrap());
        assert_eq!(low.arena_bytes, arena, "{name}: planned arena");
        if let Some(tflm) = tflm {
            assert!(arena < tflm, "{name}: {arena} bytes, TFLM {tflm}");
        }
    }
}

#[test]
fn public_models_reproduce_litert_reference_outputs_byte_for_byte() {
    for (folder, name) in MODELS {
        let path = model_path(folder, name);
        let graph = tflite::load(&path).unwrap();
        let low = lowered(&graph);
        let mut host = HostModel::new(low.blob.as_bytes()).unwrap();
        let input_tensor = &graph.tensors[graph.input];
        let float = input_tensor.quant.is_none();
        // Several model inputs arrive packed, one after another.
        let parts: Vec<usize> = graph
            .input_parts()
            .iter()
            .map(|&(_, t)| graph.tensors[t].shape.elements().unwrap())
            .collect();
        let (outputs, one) = golden(name);
        for k in 0..COUNT {
            let packed: Vec<u8> = (0..parts.len())
                .flat_map(|j| input(k + 1000 * j as u64, parts[j], float))
                .collect();
            let outcome = host.run(&packed, &[]).unwrap();
            let got = host.tensor(&outcome.output);
            let at = k as usize * one;
            assert_eq!(got, &outputs[at..at + one], "{name}: output of input {k}");
        }
    }
}

/// The integer LSTM's own output, every step's hidden state, against LiteRT
/// (scripts/public-goldens.py keeps it), so the LSTM is seen exact and not
/// only through the dense layer and softmax after it.
#[test]
fn the_mnist_lstm_hidden_states_match_litert_at_every_step() {
    let name = "tfm_mnist_lstm_int8";
    let path = harness::workspace_root().join(format!("models/public/{name}.tflite"));
    let graph = tflite::load(&path).unwrap();
    let lstm = graph
        .layers
        .iter()
        .find(|l| matches!(l.op, harness::model::graph::LayerOp::Lstm { .. }))
        .expect("the model has an LSTM");
    // Every tensor its own bytes, so the LSTM's output is still there at the end.
    let options = Int8Options {
        placement: lower::Placement::Unshared,
        ..Int8Options::default()
    };
    let low = lower::lower_int8(&graph, &[], options).unwrap();
    let mut host = HostModel::new(low.blob.as_bytes()).unwrap();
    let golden = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/public")
        .join(name)
        .join("lstm_hidden_states.npy");
    let golden = npyz::NpyFile::new(std::fs::File::open(golden).unwrap())
        .unwrap()
        .into_vec::<i8>()
        .unwrap();
    let one = 28 * 20;
    assert_eq!(golden.len(), COUNT as usize * one);
    for k in 0..COUNT {
        host.run(&input(k, 28 * 28, false), &[]).unwrap();
        let states: Vec<i8> = host
            .tensor(&low.tensors[lstm.output])
            .iter()
            .map(|&b| b as i8)
            .collect();
        let at = k as usize * one;
        assert_eq!(states, golden[at..at + one], "hidden states of input {k}");
    }
}

/// The ONNX models against onnxruntime: the Keras helloworld through
/// tf2onnx (onnx2c's fixture: MatMul then Add of a constant bias, three
/// times), and onnx2c's conv/maxpool (a Keras export that transposes its
/// NHWC input to NCHW, and back before a Flatten that is the output). The
/// inputs are given in the model's own layout, as `bench infer` takes
/// them. Float, so within a tolerance rather than byte for byte:
/// onnxruntime's GEMM sums in its own order (with FMA), bench's dense
/// layer in input order; on these 16 inputs the two differ by at most a
/// few float32 ulps of the output.
#[test]
fn the_onnx_models_match_onnxruntime_within_float_rounding() {
    for (name, outputs) in [
        ("onnx2c_tfl_helloworld", 1),
        ("onnx2c_conv_k2_maxpool_k2", 4),
    ] {
        let path = harness::workspace_root().join(format!("models/public/{name}.onnx"));
        let graph = harness::model::import::load(&path).unwrap();
        let low = lower::lower_f32(&graph).unwrap();
        let mut host = HostModel::new(low.blob.as_bytes()).unwrap();
        let (golden, one) = golden(name);
        assert_eq!(one, 4 * outputs, "{name}: float32 outputs");
        let shape = graph.tensors[graph.input].shape;
        let elements = shape.elements().unwrap();
        for k in 0..COUNT {
            let x = graph.layout.to_bench(shape, &input(k, elements, true), 4);
            let outcome = host.run(&x, &[]).unwrap();
            let at = k as usize * one;
            let want = golden[at..at + one].chunks_exact(4);
            for (got, want) in host.tensor(&outcome.output).chunks_exact(4).zip(want) {
                let (got, want) = [got, want]
                    .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                    .into();
                assert!(
                    (got - want).abs() <= 1e-6 * want.abs().max(1.0),
                    "{name}, output of input {k}: {got} against onnxruntime's {want}"
                );
            }
        }
    }
}
