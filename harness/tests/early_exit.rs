//! The trained early-exit fixture (models/digits, scripts/train-digits.py):
//! ONNX import, accuracy on its test split against the numbers onnxruntime
//! measured when it was exported, and the threshold sweep's invariants.

use harness::dataset::{self, Dataset, DatasetSpec};
use harness::evaluate::{self, Decision};
use harness::model::prepare::{self, Calibration, Prepared, Recipe, Scheme};
use harness::model::{import, Graph, Precision};
use kernels::exit::Confidence;
use std::path::{Path, PathBuf};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/digits")
}

fn split(name: &str) -> Dataset {
    let spec = DatasetSpec { name: name.into(), path: format!("{name}.npz").into(), labels: None, label_column: "label".into(), limit: None, shuffle: None };
    dataset::load(&spec, &fixture_dir()).unwrap()
}

fn model(name: &str) -> Graph {
    import::load(&fixture_dir().join(format!("{name}.onnx"))).unwrap()
}

/// The correct counts per exit (exit1, exit2, final) that onnxruntime measured on the exported file.
fn recorded(name: &str) -> Vec<usize> {
    let text = std::fs::read_to_string(fixture_dir().join("fixture.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["models"][name]["correct"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect()
}

fn prepare(graph: &Graph, scheme: Scheme, calibration: Calibration) -> Prepared {
    let recipe = Recipe { scheme, overrides: vec![], pruning: None, exits: None, weight_seed: 1, calibration, input_seed: 1 };
    prepare::prepare(graph, &recipe).unwrap()
}

/// Correct predictions when every input leaves at each exit in turn (heads, then final).
fn correct_per_exit(p: &Prepared, data: &Dataset) -> Vec<usize> {
    let inputs = evaluate::inputs(p, data).unwrap();
    let heads = p.graph.exits.len();
    (0..=heads)
        .map(|exit| {
            let exit = (exit < heads).then_some(exit);
            let decisions = evaluate::decisions(p, &inputs, &evaluate::forced(Confidence::MaxSoftmax, heads, exit)).unwrap();
            assert!(decisions.iter().all(|d| d.exit == exit.map(|e| e as u8)));
            data.correct(&decisions.iter().map(|d| d.class).collect::<Vec<_>>()).unwrap()
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
    assert_eq!(graph.tensors[graph.input].shape, kernels::geometry::Shape::new(1, 8, 8, 1));
    // Heads are scheduled right after the backbone layer they branch from.
    let names: Vec<&str> = graph.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["conv1", "pool1", "exit1.pool", "exit1.flat", "exit1", "conv2", "exit2.pool", "exit2.flat", "exit2", "conv3", "pool3", "flat", "logits"]);
    assert_eq!((graph.macs(), graph.params()), (9_216 + 73_728 + 294_912 + 160 + 320 + 2_560, 160 + 4_640 + 18_496 + 170 + 330 + 2_570));
    let test = split("digits-test");
    assert_eq!(test.len(), 360);
    let p = prepare(&graph, Scheme::Float32, Calibration::Synthetic(8, 1));
    assert_eq!(correct_per_exit(&p, &test), recorded("digits-float"));
    // With no threshold no head exits: the final classifier's accuracy.
    assert_eq!(evaluate::accuracy(&p, &test).unwrap(), Some((recorded("digits-float")[2], 360)));
}

#[test]
fn the_binary_fixture_imports_binary_layers_and_reproduces_onnxruntime_accuracy() {
    let graph = model("digits-binary");
    let binary: Vec<&str> = graph.layers.iter().filter(|l| l.precision == Precision::Binary).map(|l| l.name.as_str()).collect();
    assert_eq!(binary, ["conv2", "conv3"]);
    assert_eq!(graph.binary_ops(), 73_728 + 294_912);
    let p = prepare(&graph, Scheme::Float32, Calibration::Synthetic(8, 1));
    assert_eq!(correct_per_exit(&p, &split("digits-test")), recorded("digits-binary"));
}

#[test]
fn int8_calibrated_on_the_training_split_keeps_the_accuracy() {
    // bench's own post-training quantization (256 training images), within a few inputs of float.
    let test = split("digits-test");
    let p = prepare(&model("digits-float"), Scheme::Int8 { per_channel: true }, train_calibration(256));
    assert_eq!(correct_per_exit(&p, &test), [320, 353, 353]);
    let p = prepare(&model("digits-binary"), Scheme::Int8 { per_channel: true }, train_calibration(256));
    assert_eq!(correct_per_exit(&p, &test), [307, 328, 349]);
}

#[test]
fn threshold_zero_exits_everything_at_the_first_head_and_one_nothing_early() {
    let test = split("digits-test");
    let p = prepare(&model("digits-float"), Scheme::Int8 { per_channel: true }, train_calibration(256));
    let thresholds: Vec<f32> = (0..=20).map(|i| i as f32 / 20.0).collect();
    let points = evaluate::sweep(&p, &test, &thresholds).unwrap();
    assert!(points[0].decisions.iter().all(|d: &Decision| d.exit == Some(0)));
    assert_eq!(points[0].exit_rates, [1.0, 0.0, 0.0]);
    assert!(points[20].decisions.iter().all(|d| d.exit.is_none()));
    assert_eq!(points[20].accuracy, Some(353.0 / 360.0));
    let work = evaluate::work_to_exits(&p.graph);
    assert_eq!(work.iter().map(|w| w.0).collect::<Vec<_>>(), [9_216 + 160, 9_216 + 160 + 73_728 + 320, p.graph.macs()]);
    assert_eq!(points[0].mean_macs, (9_216 + 160) as f64);
    for point in &points {
        assert!((point.exit_rates.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }
    // A higher max-softmax threshold never lets more inputs leave early.
    for pair in points.windows(2) {
        assert!(pair[1].exit_rates[2] >= pair[0].exit_rates[2]);
    }
}
