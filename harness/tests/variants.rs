//! Variant preparation: pruning, binarization, int4, sparse kernels and
//! exit heads, each checked by exact counts or against another lowering.

use harness::model::prepare::{self, Calibration, Pruning, Recipe, Scheme};
use harness::model::{zoo, Precision};
use kernels::exit::Confidence;
use kernels::model::{Model, Op, Weights};
use std::cmp::Ordering::{Equal, Greater, Less};

fn recipe(scheme: Scheme) -> Recipe {
    Recipe {
        scheme,
        overrides: vec![],
        pruning: None,
        exits: None,
        weight_seed: 7,
        calibration: Calibration::Synthetic(4, 100),
        input_seed: 1,
        memory: Default::default(),
    }
}

fn ops(p: &prepare::Prepared) -> Vec<Op> {
    Model::parse(p.lowered.blob.as_bytes())
        .unwrap()
        .ops()
        .collect()
}

/// Halving DS-CNN's channels by L1 norm, counted by hand: conv1 10x4x1x32,
/// four depthwise 3x3x32 and pointwise 32x32, fc 32x12, all with biases.
#[test]
fn channel_pruning_gives_a_smaller_dense_model() {
    let g = zoo::ds_cnn();
    let r = Recipe {
        pruning: Some(Pruning::Channels {
            ratio: 0.5,
            at_peak: false,
        }),
        ..recipe(Scheme::Int8 { per_channel: true })
    };
    let p = prepare::prepare(&g, &r).unwrap();
    assert_eq!(p.pruned_layers, ["conv1", "pw1", "pw2", "pw3", "pw4"]);
    assert_eq!(
        (p.graph.params(), p.graph.macs()),
        (
            1312 + 4 * 320 + 4 * 1056 + 396,
            160_000 + 4 * 36_000 + 4 * 128_000 + 384
        )
    );
    // The kept channels of conv1 are the 32 with the largest L1 norm, in order.
    let mut full = zoo::ds_cnn();
    harness::model::init::seeded(&mut full, 7);
    let w = full.layer("conv1").unwrap().weights.clone().unwrap();
    let norms: Vec<f32> = w
        .kernel
        .chunks(40)
        .map(|r| r.iter().map(|v| v.abs()).sum())
        .collect();
    let mut sorted = norms.clone();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let kept = &p
        .graph
        .layer("conv1")
        .unwrap()
        .weights
        .as_ref()
        .unwrap()
        .kernel;
    let kept_norms: Vec<f32> = kept
        .chunks(40)
        .map(|r| r.iter().map(|v| v.abs()).sum())
        .collect();
    assert!(kept_norms.iter().all(|n| *n >= sorted[31]));
    // Only the residual-free convs of ResNet-8 can lose channels.
    let p = prepare::prepare(&zoo::resnet8(), &r).unwrap();
    assert_eq!(
        p.pruned_layers,
        ["stack1.conv1", "stack2.conv1", "stack3.conv1"]
    );
    prepare::reference(&p, &[]).unwrap();
}

/// The formats of a lowered model's conv and dense layers: `(dense, CSR,
/// blocks, CSR depthwise)`.
fn formats(p: &prepare::Prepared) -> (usize, usize, usize, usize) {
    let mut counts = (0, 0, 0, 0);
    for op in ops(p) {
        match op {
            Op::Conv2d { weights, .. } | Op::FullyConnected { weights, .. } => match weights {
                Weights::Sparse { .. } => counts.1 += 1,
                Weights::Blocks { .. } => counts.2 += 1,
                _ => counts.0 += 1,
            },
            Op::DepthwiseConv2d {
                weights: Weights::Sparse { .. },
                ..
            } => counts.3 += 1,
            _ => {}
        }
    }
    counts
}

/// Pruned models: each layer gets the format the lowering's rules give
/// (the block kernels for rows of whole blocks of four up to 85% of them
/// kept, 35% at batch 1, unless they are less than half full and the CSR
/// kernels take the layer; else the CSR kernels from 68% zeros, 85% at
/// batch 1, for rows of 4 non-zeros or more (windows of up to 576 bytes
/// in the field form, deeper ones by taps with kernel rows of 2 or more
/// unless 75% of the windows lie inside); else dense;
/// depthwise layers CSR from 40% zeros), and every format gives exactly
/// the bytes the dense kernels give on the same pruned weights.
#[test]
fn sparse_kernels_match_dense_kernels_on_pruned_weights() {
    let magnitude = |sparsity| Pruning::Magnitude {
        sparsity,
        sparse_kernels: true,
    };
    let block = |sparsity| Pruning::Block {
        block: [1, 4],
        sparsity,
        sparse_kernels: true,
    };
    // DS-CNN: conv1 (a 10x4 window over one channel: 40 values a row),
    // four pointwise layers of 125 pixels, fc at batch 1. The autoencoder:
    // ten dense layers at batch 1, one of them 8 wide. The last field: how
    // the pruned model's bytes compare with the dense one's. CSR entries
    // take 4 bytes per non-zero, blocks 8 per block of four, so half the
    // blocks kept or more cost more than dense weights.
    let cases = [
        // 80% unstructured: 59% of the blocks of four hold a non-zero, a
        // third full: the pointwise layers and conv1 (its 40-byte windows
        // gathered, the field form) get CSR, the four depthwise layers CSR.
        ("ds-cnn", magnitude(0.8), (1, 5, 0, 4), Less),
        ("autoencoder", magnitude(0.8), (10, 0, 0, 0), Equal),
        // ResNet-8 at 80%: every 3x3 layer CSR (stack2's and stack3's in
        // the field form, conv1's and stack1's, 16 channels with few
        // windows crossing the padding, by taps), and stack3's 1x1 shortcut;
        // stack2's shortcut (16 input channels: 3.2 non-zeros a row)
        // blocks; fc (batch 1: CSR from 85% zeros) dense.
        ("resnet8", magnitude(0.8), (1, 8, 1, 0), Less),
        // 90%: 34% of the blocks kept, near the batch-1 bound of 35%: one
        // layer, just past it, gets CSR.
        ("autoencoder", magnitude(0.9), (0, 1, 9, 0), Less),
        // Block pruning: the depthwise layers' blocks of four channels at
        // one tap zeroed, CSR from 40% zeros.
        ("ds-cnn", block(0.8), (0, 0, 6, 4), Less),
        ("ds-cnn", block(0.5), (1, 0, 5, 4), Greater),
        ("autoencoder", block(0.8), (0, 0, 10, 0), Less),
        ("autoencoder", block(0.5), (10, 0, 0, 0), Equal),
    ];
    for (name, pruning, want, size) in cases {
        let sparse = Recipe {
            pruning: Some(pruning.clone()),
            ..recipe(Scheme::Int8 { per_channel: true })
        };
        let without = match pruning {
            Pruning::Magnitude { sparsity, .. } => Pruning::Magnitude {
                sparsity,
                sparse_kernels: false,
            },
            Pruning::Block {
                block, sparsity, ..
            } => Pruning::Block {
                block,
                sparsity,
                sparse_kernels: false,
            },
            Pruning::Channels { .. } => unreachable!(),
        };
        let dense = Recipe {
            pruning: Some(without),
            ..sparse.clone()
        };
        let (s, d) = (
            prepare::prepare(&zoo::build(name).unwrap(), &sparse).unwrap(),
            prepare::prepare(&zoo::build(name).unwrap(), &dense).unwrap(),
        );
        assert_eq!(formats(&s), want, "{name} {pruning:?}");
        let dense_formats = formats(&d);
        assert_eq!(
            dense_formats.1 + dense_formats.2 + dense_formats.3,
            0,
            "{name} {pruning:?}"
        );
        let (s_len, d_len) = (
            s.lowered.blob.as_bytes().len(),
            d.lowered.blob.as_bytes().len(),
        );
        // Equal: the same weights in 4-byte-aligned constants, but for
        // the alignment of the blocks' 8-byte records.
        let compared = match s_len.abs_diff(d_len) < 64 {
            true => Equal,
            false => s_len.cmp(&d_len),
        };
        assert_eq!(
            compared, size,
            "{name} {pruning:?}: {s_len} bytes, dense {d_len}"
        );
        assert_eq!(
            prepare::reference(&s, &[]).unwrap(),
            prepare::reference(&d, &[]).unwrap(),
            "{name} {pruning:?}"
        );
    }
}

/// Block pruning zeroes whole blocks: at [1, 4] every row's blocks of four
/// are all zero or kept, and the share of zero blocks is the sparsity
/// (floored) in each conv, depthwise and dense layer.
#[test]
fn block_pruning_zeroes_whole_blocks() {
    for (block, sparsity) in [([1, 4], 0.8), ([2, 8], 0.5), ([4, 1], 0.75)] {
        let mut g = zoo::ds_cnn();
        harness::model::init::seeded(&mut g, 7);
        harness::model::transform::prune_blocks(&mut g, block, sparsity);
        for layer in &g.layers {
            let Some(w) = layer.weights.as_ref() else {
                continue;
            };
            // Output channels by receptive fields, or a depthwise filter's
            // taps by channels (blocks of four channels at one tap).
            let channels = w.bias.len().max(1);
            let (rows, columns) = match layer.op {
                harness::model::LayerOp::DepthwiseConv2d { .. } => {
                    (w.kernel.len() / channels, channels)
                }
                _ => (channels, w.kernel.len() / channels),
            };
            let zero = |r: usize, c: usize| w.kernel[r * columns + c] == 0.0;
            match layer.op {
                harness::model::LayerOp::Conv2d { .. }
                | harness::model::LayerOp::Dense { .. }
                | harness::model::LayerOp::DepthwiseConv2d { .. } => {
                    let (mut blocks, mut zeros) = (0, 0);
                    for r0 in (0..rows).step_by(block[0]) {
                        for c0 in (0..columns).step_by(block[1]) {
                            let cells: Vec<(usize, usize)> = (r0..(r0 + block[0]).min(rows))
                                .flat_map(|r| {
                                    (c0..(c0 + block[1]).min(columns)).map(move |c| (r, c))
                                })
                                .collect();
                            let all = cells.iter().all(|&(r, c)| zero(r, c));
                            let none = cells.iter().all(|&(r, c)| !zero(r, c));
                            assert!(all || none, "{}: a block half zeroed", layer.name);
                            blocks += 1;
                            zeros += all as usize;
                        }
                    }
                    let want = (blocks as f32 * sparsity).floor() as usize;
                    assert_eq!(zeros, want, "{} {block:?}", layer.name);
                }
                _ => assert!(w.kernel.iter().all(|&v| v != 0.0), "{}", layer.name),
            }
        }
    }
}

#[test]
fn binary_scheme_keeps_first_and_last_layers() {
    let p = prepare::prepare(&zoo::ds_cnn(), &recipe(Scheme::Binary { keep: None })).unwrap();
    let binary: Vec<&str> = p
        .graph
        .layers
        .iter()
        .filter(|l| l.precision == Precision::Binary)
        .map(|l| l.name.as_str())
        .collect();
    assert_eq!(binary, ["pw1", "pw2", "pw3", "pw4"]);
    assert_eq!(
        (p.graph.macs(), p.graph.binary_ops()),
        (2_656_768 - 4 * 512_000, 4 * 512_000)
    );
    let packs = ops(&p)
        .iter()
        .filter(|op| matches!(op, Op::PackBits { .. }))
        .count();
    assert_eq!(packs, 4);
    let (out, exit) = prepare::reference(&p, &[]).unwrap();
    assert_eq!((out.len(), exit), (12, None));
    // The zoo's BinaryNet is binary where the variant says: all but its first and last layers.
    let b = prepare::prepare(
        &zoo::build("binarynet-cifar").unwrap(),
        &recipe(Scheme::Binary { keep: None }),
    )
    .unwrap();
    assert_eq!(
        b.graph
            .layers
            .iter()
            .filter(|l| l.op == harness::model::LayerOp::Sign)
            .count(),
        6
    );
    prepare::reference(&b, &[]).unwrap();
    // Float: the same architecture, every layer float.
    let f = prepare::prepare(
        &zoo::build("binarynet-cifar").unwrap(),
        &recipe(Scheme::Float32),
    )
    .unwrap();
    let (out, _) = prepare::reference(&f, &[]).unwrap();
    let probs: &[f32] = bytemuck::cast_slice(&out);
    assert!((probs.iter().sum::<f32>() - 1.0).abs() < 1e-5);
}

#[test]
fn int4_halves_the_weight_bytes() {
    let g = zoo::autoencoder();
    let (q8, q4) = (
        prepare::prepare(&g, &recipe(Scheme::Int8 { per_channel: true })).unwrap(),
        prepare::prepare(&g, &recipe(Scheme::Int4)).unwrap(),
    );
    let bytes = |p: &prepare::Prepared| -> usize {
        ops(p)
            .iter()
            .map(|op| match op {
                Op::FullyConnected {
                    weights: Weights::Int8 { filter, .. } | Weights::Int4 { filter, .. },
                    ..
                } => filter.len as usize,
                _ => 0,
            })
            .sum()
    };
    // 264,192 weights: one byte each in int8, half a byte in int4 (every row even).
    assert_eq!((bytes(&q8), bytes(&q4)), (264_192, 132_096));
    prepare::reference(&q4, &[]).unwrap();
}

#[test]
fn exit_heads_fire_by_run_time_threshold() {
    let r = Recipe {
        exits: Some((vec!["pw2".into()], Confidence::MaxSoftmax)),
        ..recipe(Scheme::Int8 { per_channel: true })
    };
    let p = prepare::prepare(&zoo::ds_cnn(), &r).unwrap();
    assert_eq!(p.graph.exits.len(), 1);
    assert_eq!(
        Model::parse(p.lowered.blob.as_bytes())
            .unwrap()
            .header()
            .exit_heads,
        1
    );
    // Max-softmax is always >= 0 and never > 1.
    assert_eq!(prepare::reference(&p, &[0.0]).unwrap().1, Some(0));
    assert_eq!(prepare::reference(&p, &[1.01]).unwrap().1, None);
    assert_eq!(prepare::reference(&p, &[]).unwrap().1, None);
    // The head costs its pool and its dense layer: 25x5x64 pooled, 64x12 MACs.
    assert_eq!(p.graph.macs(), 2_656_768 + 64 * 12);
}

#[test]
fn overrides_name_their_problem() {
    let r = Recipe {
        overrides: vec![("dw1".into(), Precision::Int4)],
        ..recipe(Scheme::Int8 { per_channel: true })
    };
    let e = prepare::prepare(&zoo::ds_cnn(), &r).unwrap_err();
    assert_eq!(e.to_string(), "failed to override the precision at layer 'dw1': depthwise convolutions have int8 and float kernels only");
    let r = Recipe {
        overrides: vec![("pw9".into(), Precision::Binary)],
        ..recipe(Scheme::Int8 { per_channel: true })
    };
    assert_eq!(
        prepare::prepare(&zoo::ds_cnn(), &r)
            .unwrap_err()
            .to_string(),
        "failed to override the precision: model 'ds-cnn' has no layer 'pw9'"
    );
}

/// The zoo's BinaryNet is an architecture: `int8` is its int8 twin (no
/// binary layer, no sign), `binary` binarizes all but the first and last
/// layers, and a per-layer override takes one binary layer back to int8.
#[test]
fn binarynet_precision_is_the_variants() {
    let graph = zoo::build("binarynet-cifar").unwrap();
    let binary_layers = |p: &prepare::Prepared| -> Vec<String> {
        p.graph
            .layers
            .iter()
            .filter(|l| l.precision == Precision::Binary)
            .map(|l| l.name.clone())
            .collect()
    };
    let twin = prepare::prepare(&graph, &recipe(Scheme::Int8 { per_channel: true })).unwrap();
    assert!(binary_layers(&twin).is_empty());
    assert!(ops(&twin)
        .iter()
        .all(|op| !matches!(op, Op::PackBits { .. })));
    let binary = prepare::prepare(&graph, &recipe(Scheme::Binary { keep: None })).unwrap();
    assert_eq!(
        binary_layers(&binary),
        ["conv2", "conv3", "conv4", "conv5", "conv6", "fc1"]
    );
    let mut mixed = recipe(Scheme::Binary { keep: None });
    mixed.overrides = vec![("conv2".into(), Precision::Full)];
    let mixed = prepare::prepare(&graph, &mixed).unwrap();
    assert_eq!(
        binary_layers(&mixed),
        ["conv3", "conv4", "conv5", "conv6", "fc1"]
    );
    for p in [&twin, &binary, &mixed] {
        let (out, exit) = prepare::reference(p, &[]).unwrap();
        assert_eq!((out.len(), exit), (10, None));
    }
}

/// Channel pruning aimed at the activation peak (Pex's co-design) removes
/// channels only where the peak is: on MobileNetV1 0.25 the first
/// convolution and the first pointwise layer, whose outputs (and the
/// depthwise layer's between them) are live at the peak. The peak falls
/// as far as pruning every layer takes it, with 0.3% of the parameters
/// removed against 73%, and the planner's arena with it.
#[test]
fn channel_pruning_at_the_peak_prunes_where_the_activations_peak() {
    use harness::model::transform;
    let g = zoo::mobilenet_v1_025();
    let at_peak = |ratio| Recipe {
        pruning: Some(Pruning::Channels {
            ratio,
            at_peak: true,
        }),
        ..recipe(Scheme::Int8 { per_channel: true })
    };
    let uniform = Recipe {
        pruning: Some(Pruning::Channels {
            ratio: 0.5,
            at_peak: false,
        }),
        ..recipe(Scheme::Int8 { per_channel: true })
    };
    let none = recipe(Scheme::Int8 { per_channel: true });
    let [p, u, n] = [at_peak(0.5), uniform, none].map(|r| prepare::prepare(&g, &r).unwrap());
    assert_eq!(p.pruned_layers, ["conv1", "block1.pw"]);
    assert_eq!(u.pruned_layers.len(), 14);
    // Live values where they peak, by hand: block1's depthwise output
    // (48x48x8) beside its pointwise output (48x48x16) before; after, the
    // 96x96x3 input beside conv1's 48x48x4 output.
    assert_eq!(transform::peak(&n.graph), (2, 55_296));
    assert_eq!(transform::peak(&p.graph), (0, 36_864));
    assert_eq!(transform::peak(&u.graph), (0, 36_864));
    assert_eq!(
        (n.graph.params(), p.graph.params(), u.graph.params()),
        (210_850, 210_258, 56_370)
    );
    // The planner's arena follows (int8: a byte a value).
    let arenas = [&n, &p, &u].map(|v| v.lowered.arena_bytes);
    assert_eq!(arenas, [55_296, 36_864, 36_864]);
    // ResNet-8's peak is a residual block's input and sum beside its
    // convolutions' outputs: pruning where it is cannot lower it.
    let e = prepare::prepare(&zoo::resnet8(), &at_peak(0.5))
        .err()
        .unwrap();
    assert!(e.to_string().contains("cannot lower it"), "{e}");
}
