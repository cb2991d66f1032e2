//! The zoo's architectures reproduce the MLPerf Tiny reference models'
//! MAC and parameter counts (weights + biases, batch norm folded).

use harness::model::zoo;

#[test]
fn mlperf_tiny_counts_are_exact() {
    let expected = [
        ("ds-cnn", 2_656_768, 22_604),
        ("resnet8", 12_501_632, 77_706),
        ("mobilenet-v1-0.25", 7_489_664, 210_850),
        ("autoencoder", 264_192, 265_864),
    ];
    for (name, macs, params) in expected {
        let g = zoo::build(name).unwrap();
        assert_eq!((g.macs(), g.params()), (macs, params), "{name}");
    }
    assert_eq!(zoo::NAMES.len(), expected.len() + 3);
    assert!(zoo::build("resnet9").is_none());
}

#[test]
fn shapes_follow_the_reference_models() {
    let kws = zoo::ds_cnn();
    assert_eq!(
        kws.tensors[kws.layer("conv1").unwrap().output].shape,
        kernels::geometry::Shape::new(1, 25, 5, 64)
    );
    assert_eq!(kws.tensors[kws.output].shape.c, 12);
    let ic = zoo::resnet8();
    let add3 = ic.layer("stack3.add").unwrap();
    assert_eq!(
        ic.tensors[add3.output].shape,
        kernels::geometry::Shape::new(1, 8, 8, 64)
    );
    let vww = zoo::mobilenet_v1_025();
    let last = vww.layer("block13.pw").unwrap();
    assert_eq!(
        vww.tensors[last.output].shape,
        kernels::geometry::Shape::new(1, 3, 3, 256)
    );
}

/// micro_speech counted by hand: conv 25x20 outputs x 8 filters x 10x8
/// taps = 320,000 MACs and 640 + 8 parameters; dense 4000x4 = 16,000 MACs
/// and 16,000 + 4 parameters. TFLM documents the same 25x20x8 conv output.
#[test]
fn micro_speech_counts_are_exact() {
    let g = zoo::build("micro-speech").unwrap();
    assert_eq!((g.macs(), g.params()), (336_000, 16_652));
    assert_eq!(
        g.tensors[g.layer("conv1").unwrap().output].shape,
        kernels::geometry::Shape::new(1, 25, 20, 8)
    );
}

/// Hello Edge's DNN-S: 250x144 + 2 x 144x144 + 144x12 = 79,200 MACs, and
/// 3 x 144 + 12 biases: 79,644 parameters, the paper's "80.0K".
#[test]
fn dnn_kws_counts_are_exact() {
    let g = zoo::build("dnn-kws").unwrap();
    assert_eq!((g.macs(), g.params()), (79_200, 79_644));
}

/// BinaryNet at quarter width, counted by hand: 39,160,320 MACs, all int8
/// in the zoo's architecture. Binarized as `scheme = "binary"` does it, the
/// first and last layers stay int8: conv1 (884,736 MACs) and fc2 (2,560);
/// conv2..conv6 and fc1 become 38,273,024 binary ops, each after a sign.
#[test]
fn binarynet_keeps_first_and_last_layers_int8() {
    let mut g = zoo::build("binarynet-cifar").unwrap();
    assert_eq!(
        (g.macs(), g.binary_ops(), g.params()),
        (39_160_320, 0, 814_122)
    );
    let keep = harness::model::transform::first_and_last(&g);
    harness::model::transform::binarize(&mut g, &keep).unwrap();
    assert_eq!(
        (g.macs(), g.binary_ops(), g.params()),
        (887_296, 38_273_024, 814_122)
    );
    let binary: Vec<&str> = g
        .layers
        .iter()
        .filter(|l| l.precision == harness::model::Precision::Binary)
        .map(|l| l.name.as_str())
        .collect();
    assert_eq!(binary, ["conv2", "conv3", "conv4", "conv5", "conv6", "fc1"]);
    assert_eq!(
        g.layers
            .iter()
            .filter(|l| l.op == harness::model::LayerOp::Sign)
            .count(),
        6
    );
}
