//! The trained early-exit fixture (models/digits, scripts/train-digits.py):
//! ONNX import, accuracy on its test split against the numbers onnxruntime
//! measured when it was exported, and the threshold sweep's invariants.

use harness::accuracy::evaluate::{self, Decision};
use harness::input::dataset::{self, Dataset, DatasetSpec};
use harness::model::prepare::{self, Calibration, Prepared, Recipe, Scheme};
use harness::model::{import, Graph, Precision};
use kernels::exit::Confidence;
use std::path::{Path, PathBuf};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/digits")
}

fn split(name: &str) -> Dataset {
    let spec = DatasetSpec {
        name: name.into(),
        path: format!("{name}.npz").into(),
        labels: None,
        label_column: "label".into(),
        limit: None,
        shuffle: None,
    };
    dataset::load(&spec, &fixture_dir()).unwrap()
}

fn model(name: &str) -> Graph {
    import::load(&fixture_dir().join(format!("{name}.onnx"))).unwrap()
}

/// The correct counts per exit (exit1, exit2, final) that onnxruntime measured on the exported file.
fn recorded(name: &str) -> Vec<usize> {
    let text = std::fs::read_to_string(fixture_dir().join("fixture.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["models"][name]["correct"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect()
}

fn prepare(graph: &Graph, scheme: Scheme, calibration: Calibration) -> Prepared {
    let recipe = Recipe {
        scheme,
        overrides: vec![],
        pruning: None,
        exits: None,
        weight_seed: 1,
        calibration,
        input_seed: 1,
        memory: Default::default(),
    };
    prepare::prepare(graph, &recipe).unwrap()
}

/// Correct predictions when every input leaves at each exit in turn (heads, then final).
fn correct_per_exit(p: &Prepared, data: &Dataset) -> Vec<usize> {
    let inputs = evaluate::inputs(p, data).unwrap();
    let heads = p.graph.exits.len();
    (0..=heads)
        .map(|exit| {
            let exit = (exit < heads).then_some(exit);
            let decisions = evaluate::decisions(
                p,
                &inputs,
                &evaluate::forced(Confidence::MaxSoftmax, heads, exit),
            )
            .unwrap();
            assert!(decisions.iter().all(|d| d.exit == exit.map(|e| e as u8)));
            data.correct(&decisions.iter().map(|d| d.class).collect::<Vec<_>>())
                .unwrap()
        })
        .collect()
}

fn train_calibration(samples: usize) -> Calibration {
    let train = split("digits-train");
    Calibration::Samples((0..samples).map(|i| train.real(i)).collect())
}

#[test]
fn the_float_fixture_imports_with_two_heads_and_reproduces_onnxruntime_accuracy() {
    let graph = model("digits-float");
    assert_eq!(graph.exits.len(), 2);
    assert_eq!(
        graph.tensors[graph.input].shape,
        kernels::geometry::Shape::new(1, 8, 8, 1)
    );
    // Heads are scheduled right after the backbone layer they branch from.
    let names: Vec<&str> = graph.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "conv1",
            "pool1",
            "exit1.pool",
            "exit1.flat",
            "exit1",
            "conv2",
            "exit2.pool",
            "exit2.flat",
            "exit2",
            "conv3",
            "pool3",
            "flat",
            "logits"
        ]
    );
    assert_eq!(
        (graph.macs(), graph.params()),
        (
            9_216 + 73_728 + 294_912 + 160 + 320 + 2_560,
            160 + 4_640 + 18_496 + 170 + 330 + 2_570
        )
    );
    let test = split("digits-test");
    assert_eq!(test.len(), 360);
    let p = prepare(&graph, Scheme::Float32, Calibration::Synthetic(8, 1));
    assert_eq!(correct_per_exit(&p, &test), recorded("digits-float"));
    // With no threshold no head exits: the final classifier's accuracy.
    let inputs = evaluate::inputs(&p, &test).unwrap();
    assert_eq!(
        evaluate::accuracy(&p, &test, &inputs).unwrap(),
        Some((recorded("digits-float")[2], 360))
    );
}

#[test]
fn the_binary_fixture_imports_binary_layers_and_reproduces_onnxruntime_accuracy() {
    let graph = model("digits-binary");
    let binary: Vec<&str> = graph
        .layers
        .iter()
        .filter(|l| l.precision == Precision::Binary)
        .map(|l| l.name.as_str())
        .collect();
    assert_eq!(binary, ["conv2", "conv3"]);
    assert_eq!(graph.binary_ops(), 73_728 + 294_912);
    let p = prepare(&graph, Scheme::Float32, Calibration::Synthetic(8, 1));
    assert_eq!(
        correct_per_exit(&p, &split("digits-test")),
        recorded("digits-binary")
    );
}

#[test]
fn int8_calibrated_on_the_training_split_keeps_the_accuracy() {
    // bench's own post-training quantization (256 training images), within a few inputs of float.
    let test = split("digits-test");
    let p = prepare(
        &model("digits-float"),
        Scheme::Int8 { per_channel: true },
        train_calibration(256),
    );
    assert_eq!(correct_per_exit(&p, &test), [320, 353, 353]);
    let p = prepare(
        &model("digits-binary"),
        Scheme::Int8 { per_channel: true },
        train_calibration(256),
    );
    assert_eq!(correct_per_exit(&p, &test), [307, 328, 349]);
}

#[test]
fn threshold_zero_exits_everything_at_the_first_head_and_one_nothing_early() {
    let test = split("digits-test");
    let p = prepare(
        &model("digits-float"),
        Scheme::Int8 { per_channel: true },
        train_calibration(256),
    );
    let thresholds: Vec<f32> = (0..=20).map(|i| i as f32 / 20.0).collect();
    let points = evaluate::sweep(
        &p,
        &test,
        &evaluate::inputs(&p, &test).unwrap(),
        &thresholds,
    )
    .unwrap();
    assert!(points[0]
        .decisions
        .iter()
        .all(|d: &Decision| d.exit == Some(0)));
    assert_eq!(points[0].exit_rates, [1.0, 0.0, 0.0]);
    assert!(points[20].decisions.iter().all(|d| d.exit.is_none()));
    assert_eq!(points[20].accuracy, Some(353.0 / 360.0));
    let work = evaluate::work_to_exits(&p.graph);
    assert_eq!(
        work.iter().map(|w| w.0).collect::<Vec<_>>(),
        [9_216 + 160, 9_216 + 160 + 73_728 + 320, p.graph.macs()]
    );
    assert_eq!(points[0].mean_macs, (9_216 + 160) as f64);
    for point in &points {
        assert!((point.exit_rates.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }
    // A higher max-softmax threshold never lets more inputs leave early.
    for pair in points.windows(2) {
        assert!(pair[1].exit_rates[2] >= pair[0].exit_rates[2]);
    }
}

// ---- datasets ----

fn spec(path: &str) -> DatasetSpec {
    DatasetSpec {
        name: "d".into(),
        path: path.into(),
        labels: None,
        label_column: "label".into(),
        limit: None,
        shuffle: None,
    }
}

#[test]
fn csv_npz_and_npy_datasets_hold_the_same_samples_in_a_fixed_order() {
    let npz = split("digits-test");
    let csv = dataset::load(&spec("digits-test.csv"), &fixture_dir()).unwrap();
    assert_eq!((csv.len(), csv.item, npz.item), (360, 64, 64));
    assert_eq!(csv.labels, npz.labels);
    // The CSV holds the pixels with 4 decimals.
    for i in [0, 1, 359] {
        assert!(csv
            .real(i)
            .iter()
            .zip(npz.real(i))
            .all(|(a, b)| (a - b).abs() < 1e-4));
    }
    // .npy samples with .npy labels, the first 10 of them.
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, shape: &[u64], values: &[f32]| {
        use npyz::WriterBuilder;
        let mut file = std::fs::File::create(dir.path().join(name)).unwrap();
        let mut w = npyz::WriteOptions::new()
            .default_dtype()
            .shape(shape)
            .writer(&mut file)
            .begin_nd()
            .unwrap();
        w.extend(values.iter().copied()).unwrap();
        w.finish().unwrap();
    };
    let x: Vec<f32> = (0..20).flat_map(|i| npz.real(i)).collect();
    write("x.npy", &[20, 8, 8, 1], &x);
    write(
        "y.npy",
        &[20],
        &npz.labels.as_ref().unwrap()[..20]
            .iter()
            .map(|&l| l as f32)
            .collect::<Vec<_>>(),
    );
    let npy = dataset::load(
        &DatasetSpec {
            labels: Some("y.npy".into()),
            limit: Some(10),
            ..spec("x.npy")
        },
        dir.path(),
    )
    .unwrap();
    assert_eq!(npy.len(), 10);
    assert_eq!(
        npy.labels.as_deref(),
        Some(&npz.labels.as_ref().unwrap()[..10])
    );
    assert_eq!(npy.real(9), npz.real(9));
    // A seeded shuffle is a fixed permutation: the same twice, a different order, the same samples.
    let shuffled = |seed| {
        dataset::load(
            &DatasetSpec {
                shuffle: Some(seed),
                ..spec("digits-test.npz")
            },
            &fixture_dir(),
        )
        .unwrap()
    };
    let (a, b) = (shuffled(7), shuffled(7));
    assert_eq!(a, b);
    assert_ne!(a.labels, npz.labels);
    let sorted = |d: &Dataset| {
        let mut l = d.labels.clone().unwrap();
        l.sort();
        l
    };
    assert_eq!(sorted(&a), sorted(&npz));
}

#[test]
fn bad_dataset_files_are_named_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.csv"), "a,b\n1,2\n").unwrap();
    std::fs::write(dir.path().join("data.txt"), "1 2 3").unwrap();
    let cases = [
        (spec("missing.npz"), "failed to read dataset `d` from "),
        (
            spec("bad.csv"),
            "it has no column `label` (the labels); its columns are a, b",
        ),
        (
            spec("data.txt"),
            "unknown format: datasets are .npz (arrays x and y), .npy or .csv files",
        ),
    ];
    for (spec, expected) in cases {
        let err = dataset::load(&spec, dir.path()).unwrap_err();
        assert!(
            err.starts_with("failed to read dataset `d` from ") && err.contains(expected),
            "{err}"
        );
    }
    let test = split("digits-test");
    assert_eq!(
        test.check_item("kws", 490).unwrap_err(),
        "dataset `digits-test` has 64 values per sample; model `kws` takes 490"
    );
}

// ---- ONNX import errors ----

mod onnx_files {
    use harness::model::onnx_proto::*;
    use prost::Message;

    pub fn tensor(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
        TensorProto {
            dims: dims.to_vec(),
            data_type: 1,
            float_data: values.to_vec(),
            name: name.into(),
            ..Default::default()
        }
    }

    pub fn ints(name: &str, values: &[i64]) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            r#type: 7,
            ints: values.to_vec(),
            ..Default::default()
        }
    }

    pub fn node(
        op: &str,
        inputs: &[&str],
        output: &str,
        attribute: Vec<AttributeProto>,
    ) -> NodeProto {
        NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            op_type: op.into(),
            attribute,
            ..Default::default()
        }
    }

    pub fn value(name: &str, dims: &[i64]) -> ValueInfoProto {
        let dim = dims
            .iter()
            .map(|&d| Dimension {
                dim_value: d,
                dim_param: String::new(),
            })
            .collect();
        ValueInfoProto {
            name: name.into(),
            r#type: Some(TypeProto {
                tensor_type: Some(TensorTypeProto {
                    elem_type: 1,
                    shape: Some(TensorShapeProto { dim }),
                }),
            }),
        }
    }

    /// input [1, 1, 4, 4] -> Conv 3x3 (2 filters, SAME) -> Relu -> GlobalAveragePool -> Flatten -> Gemm (3 classes).
    pub fn small() -> ModelProto {
        let graph = GraphProto {
            node: vec![
                node(
                    "Conv",
                    &["x", "w", "b"],
                    "c",
                    vec![ints("kernel_shape", &[3, 3]), ints("pads", &[1, 1, 1, 1])],
                ),
                node("Relu", &["c"], "r", vec![]),
                node("GlobalAveragePool", &["r"], "p", vec![]),
                node("Flatten", &["p"], "f", vec![]),
                node(
                    "Gemm",
                    &["f", "fw", "fb"],
                    "logits",
                    vec![AttributeProto {
                        name: "transB".into(),
                        r#type: 2,
                        i: 1,
                        ..Default::default()
                    }],
                ),
            ],
            name: "small".into(),
            initializer: vec![
                tensor("w", &[2, 1, 3, 3], &[0.1; 18]),
                tensor("b", &[2], &[0.0, 0.5]),
                tensor("fw", &[3, 2], &[1.0, -1.0, 0.5, 0.5, -1.0, 1.0]),
                tensor("fb", &[3], &[0.0; 3]),
            ],
            input: vec![value("x", &[1, 1, 4, 4])],
            output: vec![value("logits", &[1, 3])],
            value_info: Vec::new(),
        };
        ModelProto {
            ir_version: 8,
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: 17,
            }],
            producer_name: "test".into(),
            graph: Some(graph),
        }
    }

    pub fn bytes(m: &ModelProto) -> Vec<u8> {
        m.encode_to_vec()
    }
}

/// Sign -> Conv with +-alpha weights is a binary layer, and the Conv's own
/// pads add zeros (not +1) to the signs: its outputs equal the float model
/// given the signs themselves.
#[test]
fn an_onnx_binary_conv_pads_its_signs_with_zeros() {
    use harness::model::host::HostModel;
    use harness::model::{lower, onnx};
    use kernels::binary::BinaryPadding;
    use onnx_files::*;
    let alpha: Vec<f32> = (0..18)
        .map(|i| if (i * 7) % 5 < 2 { -0.25 } else { 0.25 })
        .collect();
    let mut float = small();
    float.graph.as_mut().unwrap().initializer[0] = tensor("w", &[2, 1, 3, 3], &alpha);
    let mut binary = float.clone();
    let g = binary.graph.as_mut().unwrap();
    g.node.insert(0, node("Sign", &["x"], "s", vec![]));
    g.node[1].input[0] = "s".into();
    let run = |m: &harness::model::onnx_proto::ModelProto, x: &[f32]| {
        let graph = onnx::import(&bytes(m), "m", Path::new("m.onnx")).unwrap();
        let low = lower::lower_f32(&graph).unwrap();
        let mut host = HostModel::new(low.blob.as_bytes()).unwrap();
        let outcome = host.run(bytemuck::cast_slice(x), &[]).unwrap();
        (graph, host.tensor(&outcome.output).to_vec())
    };
    let x: Vec<f32> = (0..16).map(|i| (i as f32 * 1.3).sin()).collect();
    let signs: Vec<f32> = x
        .iter()
        .map(|&v| if v < 0.0 { -1.0 } else { 1.0 })
        .collect();
    let (graph, got) = run(&binary, &x);
    let conv = graph
        .layers
        .iter()
        .find(|l| l.precision == Precision::Binary)
        .unwrap();
    assert_eq!(conv.binary_padding, BinaryPadding::Zero);
    let (_, want) = run(&float, &signs);
    let (got, want): (&[f32], &[f32]) = (bytemuck::cast_slice(&got), bytemuck::cast_slice(&want));
    for (g, w) in got.iter().zip(want) {
        assert!(
            (g - w).abs() <= 1e-5 * w.abs().max(1.0),
            "{got:?} vs {want:?}"
        );
    }
}

#[test]
fn onnx_errors_name_the_file_the_node_and_the_reason() {
    use harness::model::onnx;
    use onnx_files::*;
    let path = Path::new("m.onnx");
    let import = |m: &harness::model::onnx_proto::ModelProto| {
        onnx::import(&bytes(m), "m", path)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    assert_eq!(import(&small()), Ok(()));
    let edit = |f: &dyn Fn(&mut harness::model::onnx_proto::GraphProto)| {
        let mut m = small();
        f(m.graph.as_mut().unwrap());
        import(&m)
            .err()
            .unwrap_or_else(|| "imported without an error".into())
    };
    let cases: Vec<(String, &str)> = vec![
        (
            edit(&|g| g.node[1].op_type = "Einsum".into()),
            "failed to import m.onnx: operator 1 (Einsum): operator Einsum is not supported (bench reads Conv, Gemm",
        ),
        (
            edit(&|g| g.node[0].attribute[1] = ints("pads", &[-1, 0, 1, 0])),
            "failed to import m.onnx: operator 0 (Conv): pads [-1, 0, 1, 0]: a pad is negative",
        ),
        (
            edit(&|g| g.initializer[2] = tensor("fw", &[3, 4], &[0.0; 12])),
            "failed to import m.onnx: operator 4 (Gemm): its weights take 4 features, the input has 2",
        ),
        (
            edit(&|g| g.initializer[0].float_data.truncate(5)),
            "failed to import m.onnx: operator 0 (Conv): input 1 ('w'): 5 values for shape [2, 1, 3, 3] (18 elements)",
        ),
        (
            edit(&|g| g.node[1].op_type = "BatchNormalization".into()),
            "failed to import m.onnx: operator 1 (BatchNormalization): its scale must be a constant",
        ),
        (
            edit(&|g| {
                g.node.insert(0, node("Sign", &["x"], "s", vec![]));
                g.node[1].input[0] = "s".into();
                g.node[1].attribute[1] = ints("pads", &[0, 0, 0, 0]);
                g.initializer[0] = tensor("w", &[2, 1, 3, 3], &(1..=18).map(|i| i as f32 * 0.1).collect::<Vec<_>>());
            }),
            "operator 1 (Conv): it reads signs, so it is a binary layer, but the weights of output channel 0 are not all +-alpha",
        ),
        (
            edit(&|g| g.output.push(value("p", &[1, 2, 1, 1]))),
            "failed to import m.onnx: output 'p' ([1, 2]) would be an early-exit head, but its shape differs from the final output 'logits' ([1, 3])",
        ),
        (edit(&|g| g.input[0] = value("x", &[1, 1, 4, 4, 4])), "failed to import m.onnx: the input 'x' has shape [1, 1, 4, 4, 4]; [1, C, H, W], [1, C, L] or [1, F] is supported"),
        (edit(&|g| g.input[0] = value("x", &[1, 1, 4])), "failed to import m.onnx: operator 0 (Conv): its weights have shape [2, 1, 3, 3]; [O, I, KH, KW] (or [O, I, K] on a [N, C, L] input) is needed"),
    ];
    for (err, expected) in cases {
        assert!(err.contains(expected), "{err}\nexpected: {expected}");
    }
    let real = std::fs::read(fixture_dir().join("digits-float.onnx")).unwrap();
    let err = onnx::import(&real[..1000], "m", path)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("failed to import m.onnx: not a valid ONNX protobuf ("),
        "{err}"
    );
}

#[test]
fn corrupted_onnx_files_give_errors_never_panics() {
    use rand_chacha::rand_core::{Rng, SeedableRng};
    let real = std::fs::read(fixture_dir().join("digits-float.onnx")).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(6);
    let mut imported = 0;
    for _ in 0..400 {
        let mut bytes = real.clone();
        for _ in 0..1 + rng.next_u32() % 4 {
            let i = (rng.next_u64() % bytes.len() as u64) as usize;
            bytes[i] ^= 1 << (rng.next_u32() % 8);
        }
        if let Ok(graph) = harness::model::onnx::import(&bytes, "m", Path::new("m.onnx")) {
            imported += 1;
            // A flip in a weight still imports; whatever imports also prepares and runs, or says why not.
            let recipe = Recipe {
                scheme: Scheme::Float32,
                overrides: vec![],
                pruning: None,
                exits: None,
                weight_seed: 1,
                calibration: Calibration::Synthetic(2, 1),
                input_seed: 1,
                memory: Default::default(),
            };
            if let Ok(p) = prepare::prepare(&graph, &recipe) {
                let _ = prepare::reference(&p, &[]);
            }
        }
    }
    assert!(imported > 0, "flips in weights should still import");
}

// ---- suites ----

fn suite_with(models_dir: &Path, extra: &str, variant: &str) -> String {
    let m = models_dir.display();
    format!(
        "[suite]\nname = \"s\"\nwarmup = 0\nrepetitions = 2\n\n[[dataset]]\nname = \"test\"\npath = \"{m}/digits-test.npz\"\n{extra}\n[[model]]\nname = \"digits\"\nsource = {{ onnx = \"{m}/digits-float.onnx\" }}\ndataset = \"test\"\n\n[[model]]\nzoo = \"autoencoder\"\n\n[[variant]]\nname = \"v\"\nmodels = [\"digits\"]\n{variant}\n"
    )
}

#[test]
fn dataset_and_exit_mistakes_in_suites_point_at_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let m = fixture_dir();
    let cases = [
        (
            suite_with(&m, "", "exits = { thresholds = [0.5] }").replace("dataset = \"test\"\n\n[[model]]", "dataset = \"tset\"\n\n[[model]]"),
            "s.toml:13:11: no [[dataset]] named `tset`\n  help: did you mean `test`?",
        ),
        (
            suite_with(&m, "", "exits = { thresholds = [0.5] }").replace("models = [\"digits\"]", "models = [\"autoencoder\"]"),
            "s.toml:19:8: variant `v`: model `autoencoder` has no exit heads of its own; say where to attach them with exits.at",
        ),
        (
            suite_with(&m, "", "exits = { at = [\"conv2\"], thresholds = [0.5] }"),
            "s.toml:21:17: model `digits` has trained exit heads of its own; leave out exits.at to use them",
        ),
        (
            suite_with(&m, "", "exits = { thresholds = [0.5], range = { from = 0.0, to = 1.0, step = 0.1 } }"),
            "s.toml:19:8: exits needs exactly one of `thresholds = [...]` or `range = { from, to, step }`",
        ),
        (suite_with(&m, "", "exits = { range = { from = 0.0, to = 1.0, step = 0.0 } }"), "s.toml:21:19: exits.range needs step > 0 and from <= to"),
        (
            suite_with(&m, "", "quant = { scheme = \"int8\", calibration = { dataset = \"test\", samples = 8 } }")
                .replace("models = [\"digits\"]", "models = [\"autoencoder\"]"),
            "s.toml:21:54: dataset `test` has 64 values per sample; model `autoencoder` takes 640",
        ),
        (suite_with(&m, "", "").replace("digits-test.npz", "digits-tst.npz"), "s.toml:8:8: failed to read dataset `test` from "),
    ];
    let mut wrong = Vec::new();
    for (text, expected) in cases {
        let path = dir.path().join("s.toml");
        std::fs::write(&path, &text).unwrap();
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_bench"))
            .args(["validate", path.to_str().unwrap()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        let shown = err
            .strip_prefix("error: ")
            .unwrap_or(&err)
            .replace(&format!("{}/", dir.path().display()), "");
        if o.status.code() != Some(2) || !shown.starts_with(expected) {
            wrong.push(format!("{shown}expected:\n{expected}\n"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // The good suite validates: one sweep job for the swept variant.
    std::fs::write(
        dir.path().join("s.toml"),
        suite_with(
            &m,
            "",
            "exits = { range = { from = 0.0, to = 1.0, step = 0.1 } }",
        ),
    )
    .unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(["validate", dir.path().join("s.toml").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("1 jobs\n  digits/v/host\n"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

/// A model with an exit head and an auxiliary output of another shape
/// imports once the suite declares which output is the head: the head
/// exits, the auxiliary output and the layer only it needed are dropped.
/// Undeclared, the auxiliary output is refused as a head of the wrong shape.
#[test]
fn declared_exit_heads_pick_the_heads_among_several_outputs() {
    use harness::model::onnx_proto::AttributeProto;
    use onnx_files::*;
    let mut m = small();
    let g = m.graph.as_mut().unwrap();
    let trans_b = AttributeProto {
        name: "transB".into(),
        r#type: 2,
        i: 1,
        ..Default::default()
    };
    // A head on the pooled features, and an auxiliary 2-value output.
    g.node
        .push(node("Gemm", &["f", "ew", "fb"], "exit1", vec![trans_b]));
    g.node.push(node("Relu", &["f"], "aux", vec![]));
    g.initializer
        .push(tensor("ew", &[3, 2], &[0.5, 0.0, 0.0, 0.5, 1.0, 1.0]));
    g.output.push(value("exit1", &[1, 3]));
    g.output.push(value("aux", &[1, 2]));
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("two-heads.onnx");
    std::fs::write(&model, bytes(&m)).unwrap();
    let err = harness::model::onnx::load(&model).unwrap_err().to_string();
    assert!(err.contains("output 'logits' ([1, 3]) would be an early-exit head, but its shape differs from the final output 'aux' ([1, 2])"), "{err}");

    let format = harness::model::import::Format::Onnx;
    let heads = ["exit1".to_string()];
    let graph = harness::model::import::load_as(&model, format, Some(&heads)).unwrap();
    assert_eq!(graph.exits.len(), 1);
    assert_eq!(graph.tensors[graph.exits[0].logits].name, "exit1");
    assert_eq!(graph.tensors[graph.output].name, "logits");
    assert!(graph
        .layers
        .iter()
        .all(|l| graph.tensors[l.output].name != "aux"));

    let wrong = ["nope".to_string()];
    let err = harness::model::import::load_as(&model, format, Some(&wrong))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("exit-heads: the model has no output 'nope' (its outputs: "),
        "{err}"
    );
    let aux = ["aux".to_string()];
    let err = harness::model::import::load_as(&model, format, Some(&aux))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("output 'aux' ([1, 2]) would be an early-exit head"),
        "{err}"
    );

    // In a suite: the key, and the plan's early-exit figures need nothing else.
    let suite = dir.path().join("suite.toml");
    std::fs::write(
        &suite,
        "[suite]\nname = \"heads\"\n\n[[model]]\nname = \"m\"\nsource = { onnx = \"two-heads.onnx\" }\nexit-heads = [\"exit1\"]\n\n[[variant]]\nname = \"as-imported\"\n",
    )
    .unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(["validate", suite.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// A TFLite model's several outputs are packed one after another; declared
/// heads come out of the packing and exit.
#[test]
fn declared_exit_heads_unpack_a_tflite_models_outputs() {
    let path = harness::workspace_root().join("harness/tests/golden/one_op_models.json");
    let golden: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let case = golden["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["op"] == "two_outputs" && c["dtype"] == "int8")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("split.tflite");
    let hex = case["model"].as_str().unwrap();
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    std::fs::write(&model, bytes).unwrap();
    let packed = harness::model::tflite::load(&model).unwrap();
    let parts = packed.output_parts();
    assert_eq!(parts.len(), 2);
    let format = harness::model::import::Format::Tflite;
    let heads = [parts[0].0.clone()];
    // Two outputs of two values each: the first a head, the second the classifier.
    let g = harness::model::import::load_as(&model, format, Some(&heads)).unwrap();
    assert_eq!(g.exits.len(), 1);
    assert_eq!(g.exits[0].logits, parts[0].1);
    assert_eq!(g.output, parts[1].1);
    assert!(!g.layers.iter().any(|l| l.name.starts_with("output_")));
}
